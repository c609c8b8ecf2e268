package scratch

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Build compiles the command package pkg (an import path such as
// "github.com/chime-dev/chime/cmd/gateway") into a temporary directory, so
// that a run can start it as a process of its own. The compiler's output
// goes to stderr; remove deletes the binary.
func Build(ctx context.Context, pkg string, stderr io.Writer) (bin string, remove func(), err error) {
	dir, err := os.MkdirTemp("", "chime-scratch")
	if err != nil {
		return "", nil, err
	}
	bin = filepath.Join(dir, filepath.Base(pkg))
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	build.Stderr = stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("build %s: %w", filepath.Base(pkg), err)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// FreeAddr returns a loopback address no one listens on, for a process the
// run starts to listen on.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// WaitUp polls url every 50ms until it answers or ctx ends; what names the
// process in the error.
func WaitUp(ctx context.Context, what, url string) error {
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not up: %w", what, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
