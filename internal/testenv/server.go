package testenv

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// redisServer returns the path of the redis-server binary (scripts/testenv.sh
// installs it). Without one the test is skipped, or fails under
// CHIME_REQUIRE_INTEGRATION=1.
func redisServer(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		for _, p := range []string{"/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"} {
			if _, serr := os.Stat(p); serr == nil {
				return p
			}
		}
		if os.Getenv("CHIME_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("redis-server is not installed (run: make test)")
		}
		t.Skip("redis-server is not installed; test skipped (run: make test)")
	}
	return bin
}

// RedisServer starts a redis-server of the test's own on 127.0.0.1:port,
// with its data in dir and args added to its command line, and kills it
// when the test ends or when the returned stop is called. It does not wait
// for the server to answer: tests that use it watch it start.
func RedisServer(t testing.TB, port int, dir string, args ...string) (stop func()) {
	t.Helper()
	bin := redisServer(t)
	cmd := exec.Command(bin, append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--dir", dir, "--daemonize", "no", "--appendonly", "no"}, args...)...)
	logf, err := os.OpenFile(filepath.Join(dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
			logf.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

// FreePort returns a loopback TCP port nothing listens on right now.
func FreePort(t testing.TB) int { return freePort(t) }

// Forward listens on addr and relays every connection to the server at
// to, until the test ends: a real server that starts listening at addr
// only when the test says so.
func Forward(t testing.TB, addr, to string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("forward: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			open = append(open, c, s)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(s, c); s.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(c, s); c.Close() }()
		}
	}()
}
