package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/sender/webhook"
)

// redisProxy passes TCP connections on to Redis, and can hold back what
// Redis answers: while held, answers are read from Redis (the commands have
// run) but not passed on.
type redisProxy struct {
	ln     net.Listener
	target string

	mu   sync.Mutex
	open chan struct{} // closed while answers flow
}

func startRedisProxy(t *testing.T, target string) *redisProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &redisProxy{ln: ln, target: target, open: make(chan struct{})}
	close(p.open)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return p
}

func (p *redisProxy) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	go func() {
		_, _ = io.Copy(server, client)
		server.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			<-p.gate()
			if _, err := client.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *redisProxy) gate() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open
}

// hold keeps Redis's answers back until release.
func (p *redisProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open = make(chan struct{})
}

func (p *redisProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.open)
}

// chunkArrival is one webhook request: which replica sent it (the
// ?replica= of its URL), when it arrived, and its users.
type chunkArrival struct {
	replica string
	at      time.Time
	users   []string
}

// Fault: a worker process is stopped (SIGSTOP, as a long GC pause or a
// frozen VM would stop it) between the checkpoint of its third chunk and
// the send of its fourth. Injected: the worker talks to Redis through a
// proxy in the test; when the webhook sink receives the third chunk, the
// proxy holds Redis's answers back, the test waits until the chunk's
// checkpoint is in Redis, stops the process and lets the answers through.
// While it is stopped, its 1s lease expires, the reaper queues the group
// again and another worker takes it over at the checkpoint and finishes it;
// then the process is continued, with the checkpoint's answer waiting in
// its socket. Checked, at the sink, which records the replica and arrival
// of every chunk: the stopped worker sends nothing after it was stopped
// (before, it sent its fourth chunk as soon as it went on, after the other
// worker had sent it), every user is delivered exactly once, and the
// stopped worker says it gave the group up before a send.
func TestStoppedWorkerSendsNoChunkAfterItsLease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and stops a worker process")
	}
	b := setup(t)
	u, err := url.Parse(b.env.RedisURL)
	require.NoError(t, err)
	if u.Scheme != "redis" {
		t.Skip("needs a single Redis server to proxy")
	}
	bin := build(t, "worker")
	proxy := startRedisProxy(t, u.Host)
	// A stopped process cannot read; the answer it finds on going on must
	// not have timed out meanwhile.
	q := u.Query()
	q.Set("read_timeout", "1m")
	u.Host, u.RawQuery = proxy.ln.Addr().String(), q.Encode()

	const users, chunk = 500, 50
	b.cfg.ChunkSize = chunk
	b.cfg.LeaseTTL, b.cfg.AckTimeout = time.Second, 3*time.Second

	var mu sync.Mutex
	var arrivals []chunkArrival
	thirdLast := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		var p webhook.Payload
		if err == nil {
			err = json.Unmarshal(body, &p)
		}
		if err != nil || len(p.Users) == 0 {
			http.Error(w, "bad batch", http.StatusBadRequest)
			return
		}
		a := chunkArrival{replica: r.URL.Query().Get("replica"), at: time.Now(), users: p.Users}
		mu.Lock()
		arrivals = append(arrivals, a)
		n := 0
		for _, x := range arrivals {
			if x.replica == "stopped" {
				n++
			}
		}
		mu.Unlock()
		if a.replica == "stopped" && n == 3 {
			// Before the sink answers: the worker's next Redis call is
			// this chunk's checkpoint.
			proxy.hold()
			thirdLast <- p.Users[len(p.Users)-1]
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		b.sink.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	b.startCoordinator("c1")
	stopped := b.spawn(bin, "stopped", "REDIS_URL="+u.String(), "CHIME_WEBHOOK_URL="+srv.URL+"/hook?replica=stopped",
		"CHIME_WORKER_CONCURRENCY=1")
	places := []place{{"quito", "America/Guayaquil"}}
	b.putReminder("asr", 1, time.Now().Add(2*time.Hour), places)
	b.register("asr", 14_000_000, users, places)
	b.putReminder("asr", 1, nextSecond(2*time.Second), places)

	var last string
	select {
	case last = <-thirdLast:
	case <-time.After(time.Minute):
		t.Fatal("the worker did not send a third chunk")
	}
	ctx := context.Background()
	testenv.WaitUntil(t, 10*time.Second, "the third chunk's checkpoint in Redis", func() bool {
		keys, err := b.env.Redis.Keys(ctx, b.env.Prefix+"ack:*:run:*").Result()
		require.NoError(t, err)
		for _, k := range keys {
			if !strings.HasSuffix(k, ":lease") && b.env.Redis.HGet(ctx, k, "cp").Val() == last {
				return true
			}
		}
		return false
	})
	require.NoError(t, stopped.cmd.Process.Signal(syscall.SIGSTOP))
	// kill(2) returns before the stop takes effect: the held answers are
	// let through only once every thread of the worker is stopped, or a
	// worker still running could send its next chunk, rightly, in between.
	pid := stopped.cmd.Process.Pid
	testenv.WaitUntil(t, 10*time.Second, "every thread of the worker stopped", func() bool { return allStopped(t, pid) })
	stoppedAt := time.Now()
	proxy.release()

	b.cfg.WebhookURL = srv.URL + "/hook?replica=rival"
	b.startWorker("rival")
	b.waitDone("asr", 1, time.Minute)
	require.NoError(t, stopped.cmd.Process.Signal(syscall.SIGCONT))
	testenv.WaitUntil(t, 30*time.Second, "the stopped worker to give the group up", func() bool {
		return strings.Contains(stopped.log.String(), "another worker continues")
	})

	mu.Lock()
	got := slices.Clone(arrivals)
	mu.Unlock()
	var byStopped, byRival int
	var handedOver time.Time
	for _, a := range got {
		switch a.replica {
		case "stopped":
			byStopped++
			require.True(t, a.at.Before(stoppedAt), "the stopped worker sent a chunk (users %s..) after it was stopped", a.users[0])
		case "rival":
			if byRival == 0 {
				handedOver = a.at
			}
			byRival++
		}
	}
	require.Equal(t, 3, byStopped)
	require.Equal(t, users/chunk-3, byRival, "the other worker sent the rest, from the checkpoint")
	require.True(t, handedOver.After(stoppedAt))
	st := b.sink.Stats()
	require.Equal(t, users, st.Users)
	require.Zero(t, st.Duplicates)
	// It found the lease gone before its next send: at the check before
	// the send, or already while deciding that chunk's users (the keeper,
	// renewing, found it taken first).
	require.Regexp(t, "lease (passed before a send|lost while deciding a chunk|lost before the group was released)", stopped.log.String())
}

// allStopped tells whether every thread of process pid is in the stopped
// state ("T" in /proc/<pid>/task/<tid>/stat).
func allStopped(t *testing.T, pid int) bool {
	t.Helper()
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	require.NoError(t, err)
	if len(stats) == 0 {
		return false
	}
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			return false // a thread that ended meanwhile: look again
		}
		// The state follows the command name, which is in parentheses
		// (and may hold parentheses itself).
		i := strings.LastIndex(string(b), ") ")
		if i < 0 || !strings.HasPrefix(string(b)[i+2:], "T") {
			return false
		}
	}
	return true
}
