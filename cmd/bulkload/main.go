// Command bulkload sends one app's concurrent bulk subscriber requests to a
// coordinator process on loopback and reports whether the replica stayed
// ready. It starts a coordinator (cmd/coordinator, built unless
// -coordinator names a binary) on a fresh database and Redis key prefix of
// its own, defines one reminder, then sends -requests POST
// /v1/reminders/{key}/subscribers at once, each with -subscribers new
// users, while it samples /readyz -samples times. It reports how the
// requests were answered (200, 429, other), how many samples were 200, and
// the coordinator's peak resident set (VmHWM in /proc/<pid>/status). It
// prints a table and one JSON line, and stops by itself after -timeout.
// Needs REDIS_URL and MYSQL_DSN; settings such as CHIME_BULK_CONCURRENCY
// in its environment reach the coordinator.
//
// With -clients N it measures the registration rate instead: N clients
// send the requests one after another (a 429 is sent again), and it reports
// subscribers registered per second from the first request to the last
// answer.
//
//	bulkload [-requests 200] [-subscribers 10000] [-clients 0] [-samples 20] [-coordinator PATH]
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/internal/scratch"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bulkload:", err)
		os.Exit(1)
	}
}

type config struct {
	RedisURL, MySQLDSN string
	Requests, Subs     int
	Clients            int
	Samples            int
	Interval, Timeout  time.Duration
	CoordinatorBin     string
	Stderr             io.Writer
}

type result struct {
	Requests    int     `json:"requests"`
	Subscribers int     `json:"subscribers_per_request"`
	OK          int     `json:"ok"`
	Limited     int     `json:"too_many_requests"`
	Other       int     `json:"other"`
	Unanswered  int     `json:"unanswered"`
	ReadyOK     int     `json:"ready_ok"`
	Samples     int     `json:"ready_samples"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"registered_per_s"`
	IdleRSSMB   float64 `json:"coordinator_idle_rss_mb"`
	PeakRSSMB   float64 `json:"coordinator_peak_rss_mb"`
}

func (r result) print(w io.Writer) {
	fmt.Fprintf(w, "bulk requests      %d of %d subscribers each, in %.1fs\n", r.Requests, r.Subscribers, r.Seconds)
	fmt.Fprintf(w, "answers            %d ok, %d 429, %d other, %d unanswered\n", r.OK, r.Limited, r.Other, r.Unanswered)
	fmt.Fprintf(w, "registered         %.0f subscribers/s\n", r.PerSecond)
	fmt.Fprintf(w, "readiness          %d of %d samples were 200\n", r.ReadyOK, r.Samples)
	fmt.Fprintf(w, "coordinator RSS    %.0f MB idle, %.0f MB peak (VmHWM)\n", r.IdleRSSMB, r.PeakRSSMB)
	b, _ := json.Marshal(r)
	fmt.Fprintln(w, string(b))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bulkload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := config{RedisURL: getenv("REDIS_URL"), MySQLDSN: getenv("MYSQL_DSN"), Stderr: stderr}
	fs.IntVar(&cfg.Requests, "requests", 200, "bulk requests sent at once, all by one app")
	fs.IntVar(&cfg.Subs, "subscribers", 10000, "new subscribers in each request")
	fs.IntVar(&cfg.Clients, "clients", 0, "send the requests from this many clients in turn, retrying 429s (0: all at once)")
	fs.IntVar(&cfg.Samples, "samples", 20, "readiness samples taken while the requests run")
	fs.DurationVar(&cfg.Interval, "interval", 250*time.Millisecond, "time between readiness samples")
	fs.DurationVar(&cfg.Timeout, "timeout", 3*time.Minute, "the run stops after this, answered or not")
	fs.StringVar(&cfg.CoordinatorBin, "coordinator", "", "coordinator binary (default: build ./cmd/coordinator)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case cfg.RedisURL == "" || cfg.MySQLDSN == "":
		return errors.New("REDIS_URL and MYSQL_DSN are required")
	case cfg.Requests < 1 || cfg.Requests > 1000 || cfg.Subs < 1 || cfg.Samples < 1 || cfg.Samples > 1000:
		return errors.New("-requests must be from 1 to 1000, -subscribers at least 1, -samples from 1 to 1000")
	case cfg.Clients < 0 || cfg.Clients > cfg.Requests:
		return errors.New("-clients must be from 0 to -requests")
	case cfg.Interval <= 0 || cfg.Timeout <= 0:
		return errors.New("-interval and -timeout must be positive")
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	res, err := measure(ctx, cfg)
	if err != nil {
		return err
	}
	res.print(stdout)
	return nil
}

func measure(ctx context.Context, cfg config) (result, error) {
	res := result{Requests: cfg.Requests, Subscribers: cfg.Subs, Samples: cfg.Samples}
	log := slog.New(slog.NewTextHandler(cfg.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	id := newID()
	dsn, db, closeDB, err := scratch.OpenDB(ctx, cfg.MySQLDSN, "chime_bulkload_"+id, log)
	if err != nil {
		return res, err
	}
	defer closeDB()
	rdb, err := chime.OpenRedis(ctx, cfg.RedisURL)
	if err != nil {
		return res, err
	}
	defer rdb.Close()
	prefix, queue := "chime-bulkload:"+id+":", "chime-bulkload-"+id
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		scratch.CleanRedis(ctx, rdb, prefix, queue)
	}()

	bin := cfg.CoordinatorBin
	if bin == "" {
		var remove func()
		if bin, remove, err = scratch.Build(ctx, "github.com/chime-dev/chime/cmd/coordinator", cfg.Stderr); err != nil {
			return res, err
		}
		defer remove()
	}
	addr, err := scratch.FreeAddr()
	if err != nil {
		return res, err
	}
	coord := exec.Command(bin)
	coord.Env = append(os.Environ(), "REDIS_URL="+cfg.RedisURL, "MYSQL_DSN="+dsn, "CHIME_REDIS_PREFIX="+prefix,
		"CHIME_QUEUE="+queue, "CHIME_HTTP_ADDR="+addr, "CHIME_REPLICA_ID=bulkload", "CHIME_MIGRATE=false", "CHIME_LOG_LEVEL=error")
	coord.Stdout, coord.Stderr = cfg.Stderr, cfg.Stderr
	if err := coord.Start(); err != nil {
		return res, err
	}
	defer func() { _ = coord.Process.Signal(syscall.SIGTERM); _, _ = coord.Process.Wait() }()
	base := "http://" + addr
	if err := scratch.WaitUp(ctx, "coordinator", base+"/livez"); err != nil {
		return res, err
	}

	_, key, err := api.CreateApp(ctx, db, "bulkload")
	if err != nil {
		return res, err
	}
	cl := &api.Client{Base: base, Key: key}
	err = cl.Do(ctx, http.MethodPut, "/v1/reminders/bulk", map[string]any{
		"title": "Bulk", "times": []map[string]string{{"location": "utc", "zone": "UTC", "local_time": time.Now().UTC().Add(2 * time.Hour).Format("15:04")}},
	}, nil)
	if err != nil {
		return res, err
	}
	bodies := make([][]byte, cfg.Requests)
	for i := range bodies {
		var b bytes.Buffer
		b.WriteString(`{"subscribers":[`)
		for j := range cfg.Subs {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"user_id":"%d","location":"utc"}`, 1_000_000_000+i*cfg.Subs+j)
		}
		b.WriteString(`]}`)
		bodies[i] = b.Bytes()
	}
	if res.IdleRSSMB, err = memory(coord.Process.Pid, "VmRSS:"); err != nil {
		return res, err
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Requests}}
	post := func(body []byte) int {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/reminders/bulk/subscribers", bytes.NewReader(body))
		if err != nil {
			return 0
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	start := time.Now()
	codes := make(chan int, cfg.Requests)
	var wg sync.WaitGroup
	if cfg.Clients == 0 {
		for _, body := range bodies {
			wg.Go(func() { codes <- post(body) })
		}
	} else {
		next := make(chan []byte, len(bodies))
		for _, body := range bodies {
			next <- body
		}
		close(next)
		for range cfg.Clients {
			wg.Go(func() {
				for body := range next {
					code := post(body)
					for code == http.StatusTooManyRequests && ctx.Err() == nil {
						code = post(body)
					}
					codes <- code
				}
			})
		}
	}
	probe := &http.Client{Timeout: 5 * time.Second}
	for range cfg.Samples {
		if resp, err := probe.Get(base + "/readyz"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				res.ReadyOK++
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(cfg.Interval):
		}
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	close(codes)
	for c := range codes {
		switch c {
		case http.StatusOK:
			res.OK++
		case http.StatusTooManyRequests:
			res.Limited++
		case 0:
			res.Unanswered++
		default:
			res.Other++
		}
	}
	res.PerSecond = float64(res.OK*cfg.Subs) / res.Seconds
	if res.PeakRSSMB, err = memory(coord.Process.Pid, "VmHWM:"); err != nil {
		return res, err
	}
	return res, nil
}

// memory reads one of the kB figures of /proc/<pid>/status, in MB.
func memory(pid int, field string) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if kb, ok := strings.CutPrefix(line, field); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")), 64)
			return n / 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

func newID() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
