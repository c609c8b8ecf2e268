package k8s_test

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// dockerfile is the image's build recipe, joined across line continuations.
func dockerfile(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "Dockerfile"))
	require.NoError(t, err)
	defer f.Close()
	var lines []string
	var cur string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if s, ok := strings.CutSuffix(l, "\\"); ok {
			cur += s + " "
			continue
		}
		lines = append(lines, cur+l)
		cur = ""
	}
	require.NoError(t, sc.Err())
	return lines
}

// production are the commands the image ships; tools are the others
// under cmd/ (benchmarks and load generators), which it must not. A new
// command goes in one list or the other.
var (
	production = []string{"coordinator", "worker", "gateway", "chime", "chimectl"}
	tools      = []string{"bench", "bulkload", "wsload"}
)

// pinned is a FROM image pinned by digest, with the tag it tracks.
var pinned = regexp.MustCompile(`^[a-z0-9./-]+:[a-z0-9._-]+@sha256:[0-9a-f]{64}$`)

// No Docker engine is needed: the Dockerfile's own build command is run
// here (its BuildKit cache mounts aside), and it must make a binary for
// each production command and none for the benchmark and load tools, each
// static (no ELF interpreter, so it runs on distroless static) and built
// with -trimpath. Both stages start from a base pinned by digest; the
// final stage is distroless static or scratch, runs as a non-root user,
// carries the OCI labels, and the binaries land where the manifests run
// them.
func TestDockerfileBuildsStaticBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every command")
	}
	lines := dockerfile(t)
	var from []string
	var build, copyLine, user string
	labels := map[string]bool{}
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "FROM "):
			from = append(from, l)
		case strings.HasPrefix(l, "RUN ") && strings.Contains(l, "go build"):
			build = strings.TrimPrefix(l, "RUN ")
		case strings.HasPrefix(l, "COPY --from=build "):
			copyLine = l
		case strings.HasPrefix(l, "USER "):
			user = l
		case strings.HasPrefix(l, "LABEL "):
			for _, m := range regexp.MustCompile(`(org\.opencontainers\.image\.[a-z]+)=`).FindAllStringSubmatch(l, -1) {
				labels[m[1]] = true
			}
		}
	}
	require.GreaterOrEqual(t, len(from), 2, "a multi-stage build")
	for _, f := range from {
		require.Regexp(t, pinned, strings.Fields(f)[1], "%s: pin the base by digest", f)
	}
	final := strings.Fields(from[len(from)-1])[1]
	require.True(t, strings.HasPrefix(final, "gcr.io/distroless/static") || final == "scratch", "final stage %s", final)
	require.Equal(t, "USER 65532:65532", user, "the manifests' runAsUser")
	require.Equal(t, "COPY --from=build /out/ /usr/local/bin/", copyLine)
	for _, k := range []string{"title", "description", "source", "licenses", "version", "revision"} {
		require.True(t, labels["org.opencontainers.image."+k], "LABEL org.opencontainers.image.%s", k)
	}

	// BuildKit's cache mounts are options of RUN, not of the command.
	for build = strings.TrimSpace(build); strings.HasPrefix(build, "--mount="); build = strings.TrimSpace(build) {
		_, build, _ = strings.Cut(build, " ")
	}
	require.Contains(t, build, "CGO_ENABLED=0 ", "static binaries")
	require.Contains(t, build, " -trimpath ", "no build paths in the binaries")
	require.Contains(t, build, " -o /out/ ", build)
	// The command exactly as the image runs it, writing to a temporary
	// directory instead of /out/.
	out := t.TempDir()
	cmd := exec.Command("sh", "-c", strings.Replace(build, " -o /out/ ", " -o "+out+"/ ", 1))
	cmd.Dir = filepath.Join("..", "..")
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Run(), build)

	cmds, err := os.ReadDir(filepath.Join("..", "..", "cmd"))
	require.NoError(t, err)
	var all []string
	for _, c := range cmds {
		if c.IsDir() {
			all = append(all, c.Name())
		}
	}
	require.ElementsMatch(t, append(slices.Clone(production), tools...), all,
		"every command under cmd/ is a production command or a tool")
	made, err := os.ReadDir(out)
	require.NoError(t, err)
	var names []string
	for _, m := range made {
		names = append(names, m.Name())
	}
	require.ElementsMatch(t, production, names, "the image's binaries: the production commands only")
	for _, name := range production {
		f, err := elf.Open(filepath.Join(out, name))
		require.NoError(t, err, "no binary for cmd/%s", name)
		for _, p := range f.Progs {
			require.NotEqual(t, elf.PT_INTERP, p.Type, "cmd/%s is dynamically linked", name)
		}
		f.Close()
	}
}
