package docexamples

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/store"
)

// example is one shell block of a markdown file.
type example struct {
	file   string
	line   int    // of the opening fence
	script string // the block's lines
	notRun string // the reason given by a preceding <!-- not run: ... -->, if any
}

var (
	fence   = regexp.MustCompile("^\\s*```\\s*([A-Za-z0-9_-]*)")
	notRun  = regexp.MustCompile(`^<!--\s*not run:(.*?)-->\s*$`)
	command = regexp.MustCompile(`^\s*(\$\s+)?(curl|chimectl)\s`)
)

// extract returns the shell blocks of a markdown file, and an error for a
// curl or chimectl line outside one (it would never run) or a not-run
// comment without a reason or without a block after it.
func extract(file string) ([]example, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []example
	var cur *example
	inFence, shell := false, false
	pending := "" // a not-run reason waiting for its block
	pendingLine := 0
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := fence.FindStringSubmatch(line); m != nil {
			if inFence {
				if shell {
					out = append(out, *cur)
				}
				inFence, shell, cur = false, false, nil
				continue
			}
			inFence = true
			switch m[1] {
			case "sh", "bash", "console", "shell":
				shell = true
				cur = &example{file: file, line: n, notRun: pending}
			default:
				if pending != "" {
					return nil, fmt.Errorf("%s:%d: a not-run comment before a %q block, which never runs", file, pendingLine, m[1])
				}
			}
			pending = ""
			continue
		}
		if inFence {
			if shell {
				cur.script += line + "\n"
			} else if command.MatchString(line) {
				return nil, fmt.Errorf("%s:%d: a %s line outside a sh, bash or console block: %q", file, n, strings.Fields(line)[0], line)
			}
			continue
		}
		if m := notRun.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			if strings.TrimSpace(m[1]) == "" {
				return nil, fmt.Errorf("%s:%d: a not-run comment must give its reason", file, n)
			}
			pending, pendingLine = strings.TrimSpace(m[1]), n
			continue
		}
		if strings.TrimSpace(line) != "" && pending != "" {
			return nil, fmt.Errorf("%s:%d: a not-run comment must be just before its block", file, pendingLine)
		}
	}
	if inFence {
		return nil, fmt.Errorf("%s: a block is not closed", file)
	}
	return out, sc.Err()
}

// The shell functions every block runs with: curl fails on any answer that
// is not 2xx (and shows the answer), unless the example asks for -f itself.
const prelude = `set -euo pipefail
curl() {
	for a in "$@"; do case "$a" in -f|-sf|-fs|-fsS|-sSf|--fail) command curl "$@"; return;; esac; done
	command curl --fail-with-body -sS "$@"
}
`

// Fault: none is injected; the documentation is. Every shell example of
// README.md and docs/*.md runs, in order, against a coordinator process on
// loopback (real Redis and MariaDB) with an app created for the test.
// Checked: each block exits 0, so every curl got a 2xx answer and every
// chimectl command succeeded; blocks marked not run are listed with their
// reason.
func TestExamples(t *testing.T) {
	env := testenv.New(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append([]string{filepath.Join(root, "README.md")}, files...)
	var all []example
	for _, f := range files {
		ex, err := extract(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ex...)
	}

	bin := t.TempDir()
	for _, name := range []string{"coordinator", "chimectl"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, name), "./cmd/"+name)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	app, _, key, err := store.CreateApp(ctx, env.DB, "docs-"+testenv.ID(), "docs")
	if err != nil {
		t.Fatal(err)
	}
	url := startCoordinator(t, env, filepath.Join(bin, "coordinator"))

	shellEnv := append(os.Environ(),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"CHIME_API_URL="+url, "CHIME_API_KEY="+key, "APP="+strconv.FormatInt(app.ID, 10),
		"API="+url, "KEY="+key) // the names docs/gateway.md uses
	// Blocks run in a directory of their own (files they write stay out of
	// the repository) where testdata/ is the repository's.
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(root, "testdata"), filepath.Join(dir, "testdata")); err != nil {
		t.Fatal(err)
	}
	for _, ex := range all {
		rel, _ := filepath.Rel(root, ex.file)
		name := fmt.Sprintf("%s:%d", rel, ex.line)
		t.Run(name, func(t *testing.T) {
			if ex.notRun != "" {
				t.Skipf("not run: %s", ex.notRun)
			}
			cmd := exec.Command("bash", "-c", prelude+ex.script)
			cmd.Dir, cmd.Env = dir, shellEnv
			out, err := cmd.CombinedOutput()
			t.Logf("%s\n%s", ex.script, out)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		})
	}
}

// startCoordinator runs the coordinator command on a loopback port against
// env and returns its API's URL once it answers.
func startCoordinator(t *testing.T, env *testenv.Env, bin string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var secret [32]byte
	_, _ = rand.Read(secret[:])
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "REDIS_URL="+env.RedisURL, "MYSQL_DSN="+env.DSN,
		"CHIME_REDIS_PREFIX="+env.Prefix, "CHIME_QUEUE="+env.Queue, "CHIME_HTTP_ADDR="+addr,
		"CHIME_MIGRATE=false", "CHIME_REPLICA_ID=docs", "CHIME_LOG_LEVEL=warn",
		"CHIME_SECRET_KEYS=k1="+base64.StdEncoding.EncodeToString(secret[:]))
	log := &testenv.Output{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		t.Logf("coordinator:\n%s", log.String())
	})
	url := "http://" + addr
	testenv.WaitUntil(t, 30*time.Second, "the coordinator's API", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return url
}
