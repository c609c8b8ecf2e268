package k8s_test

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
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

// No Docker engine is needed: the Dockerfile's own build command is run
// here, and every binary it makes must be static (no ELF interpreter, so
// it runs on distroless static), and there must be one for each command
// under cmd/. The final stage must be distroless static or scratch and run
// as a non-root user, and the binaries land where the manifests run them.
func TestDockerfileBuildsStaticBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every command")
	}
	lines := dockerfile(t)
	var from []string
	var build, copyLine, user string
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
		}
	}
	require.GreaterOrEqual(t, len(from), 2, "a multi-stage build")
	final := strings.Fields(from[len(from)-1])[1]
	require.True(t, strings.HasPrefix(final, "gcr.io/distroless/static") || final == "scratch", "final stage %s", final)
	require.Equal(t, "USER 65532:65532", user, "the manifests' runAsUser")
	require.Equal(t, "COPY --from=build /out/ /usr/local/bin/", copyLine)

	require.Contains(t, build, "CGO_ENABLED=0 ", "static binaries")
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
	for _, c := range cmds {
		if !c.IsDir() {
			continue
		}
		bin := filepath.Join(out, c.Name())
		f, err := elf.Open(bin)
		require.NoError(t, err, "no binary for cmd/%s", c.Name())
		for _, p := range f.Progs {
			require.NotEqual(t, elf.PT_INTERP, p.Type, "cmd/%s is dynamically linked", c.Name())
		}
		f.Close()
	}
}
