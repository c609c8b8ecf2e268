package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/gateway"
	"github.com/chime-dev/chime/signing"
	"github.com/chime-dev/chime/token"
)

// One process cannot hold more than its open-file limit (about 19,000
// here), so the clients run in processes of their own: wsload starts
// itself with clientsEnv set, hands it a job on stdin, and talks to it in
// JSON lines: the job in, "connected" out, the fire instant in, the
// latencies out.

// clientsEnv, set, makes wsload a client process.
const clientsEnv = "CHIME_WSLOAD_CLIENTS"

// job is what one client process is to do.
type job struct {
	URLs     []string    `json:"urls"` // the gateways; client i connects to URLs[i % len]
	First    int         `json:"first"`
	N        int         `json:"n"`
	Sources  int         `json:"sources"`
	Parallel int         `json:"parallel"`
	Key      signing.Key `json:"key"`
	App      int64       `json:"app"` // the key's app, which Key leaves out of its JSON
}

// line is one message between wsload and a client process.
type line struct {
	Connected int       `json:"connected,omitempty"`
	FireAt    time.Time `json:"fire_at,omitzero"`
	Latencies []float64 `json:"latencies_ms,omitempty"`
	Err       string    `json:"err,omitempty"`
}

func userID(i int) string { return strconv.Itoa(1_000_000 + i) }

// runClients is a client process: it reads its job, connects, says so,
// waits for the fire instant, and reports each client's latency from it
// once every client has the message (and has acknowledged it).
func runClients(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	chime.RaiseFileLimit(slog.New(slog.NewTextHandler(io.Discard, nil)))
	in := bufio.NewScanner(stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	enc := json.NewEncoder(stdout)
	var j job
	if !in.Scan() {
		return errors.New("no job")
	}
	if err := json.Unmarshal(in.Bytes(), &j); err != nil {
		return fmt.Errorf("job: %w", err)
	}
	j.Key.App = j.App
	fail := func(err error) error { _ = enc.Encode(line{Err: err.Error()}); return err }

	transports := make([]*http.Client, j.Sources)
	for i := range transports {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}, Timeout: 30 * time.Second}
		transports[i] = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	clients := make([]*gateway.Client, j.N)
	received := make([]time.Time, j.N)
	var got atomic.Int64
	var wg sync.WaitGroup
	defer func() {
		for _, c := range clients {
			if c != nil {
				_ = c.CloseNow()
			}
		}
		wg.Wait()
	}()
	sem := make(chan struct{}, j.Parallel)
	var cg errgroup.Group
	for k := range j.N {
		i := j.First + k
		sem <- struct{}{}
		cg.Go(func() error {
			defer func() { <-sem }()
			tok, err := token.Issue(j.Key, userID(i), time.Hour, time.Now())
			if err != nil {
				return err
			}
			dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			c, err := gateway.Dial(dctx, j.URLs[i%len(j.URLs)], tok, transports[i%len(transports)])
			if err != nil {
				return fmt.Errorf("client %d: %w", i, err)
			}
			clients[k] = c
			if f := <-c.Frames; f.Type != "welcome" {
				return fmt.Errorf("client %d: first frame %q, want welcome", i, f.Type)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for f := range c.Frames {
					if f.Type == "message" && received[k].IsZero() {
						received[k] = f.Received
						actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						_ = c.Ack(actx, f.Message.ID)
						cancel()
						got.Add(1)
					}
				}
			}()
			return nil
		})
	}
	if err := cg.Wait(); err != nil {
		return fail(err)
	}
	if err := enc.Encode(line{Connected: j.N}); err != nil {
		return err
	}
	if !in.Scan() {
		return errors.New("no fire instant")
	}
	var fire line
	if err := json.Unmarshal(in.Bytes(), &fire); err != nil {
		return fail(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for got.Load() < int64(j.N) {
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("only %d of %d clients got the reminder", got.Load(), j.N))
		}
		time.Sleep(10 * time.Millisecond)
	}
	lat := make([]float64, j.N)
	for k, r := range received {
		lat[k] = float64(r.Sub(fire.FireAt).Microseconds()) / 1000
	}
	if err := enc.Encode(line{Latencies: lat}); err != nil {
		return err
	}
	// Stay connected until wsload is done measuring (it closes stdin).
	for in.Scan() {
	}
	return nil
}

// clientProc is a running client process.
type clientProc struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startClients(j job, stderr io.Writer) (*clientProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), clientsEnv+"=1")
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &clientProc{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	p.out.Buffer(make([]byte, 16<<20), 16<<20)
	return p, p.send(j)
}

func (p *clientProc) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = p.in.Write(append(b, '\n'))
	return err
}

func (p *clientProc) next() (line, error) {
	if !p.out.Scan() {
		return line{}, fmt.Errorf("client process ended: %v", p.out.Err())
	}
	var l line
	if err := json.Unmarshal(p.out.Bytes(), &l); err != nil {
		return l, err
	}
	if l.Err != "" {
		return l, errors.New(l.Err)
	}
	return l, nil
}

func (p *clientProc) stop() {
	_ = p.in.Close()
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}
