// Package bench measures Chime against the obvious alternative, one asynq
// task per user scheduled with ProcessAt, on the same machine, the same
// Redis and the same workload, in one run.
//
// The workload is U subscribers of one reminder spread over several
// locations and one fire instant. Deliveries go to a no-op in-process sink
// (measuring the engine) or to a loopback HTTP webhook receiver (measuring
// the engine plus real sending). For each system it reports registration
// rate, Redis bytes per subscriber, fire-to-last-delivery time, deliveries
// per second, lateness of each group's first delivery after the instant,
// and CPU seconds per million deliveries (this process, the Redis and the
// MariaDB server the run uses, together; "n/a" when one cannot be measured).
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/pprof"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chime-dev/chime/sender/webhook"
)

// Config is one run's settings.
type Config struct {
	RedisURL string
	MySQLDSN string
	// Users is the number of subscribers. Defaults to 1,000,000.
	Users int
	// Locations spreads them over this many places in distinct zones.
	// Defaults to 4.
	Locations int
	// GroupSize is the target number of members per group. Defaults to the
	// engine's own, from Redis's set-max-intset-entries (grouping.RedisSize).
	GroupSize int
	// ChunkSize is the users per send. Defaults to 500.
	ChunkSize int
	// Workers is the number of in-process Chime workers. Defaults to 2.
	Workers int
	// WorkerProcs, when positive, runs that many worker processes from
	// WorkerBin instead; deliveries then go to the webhook receiver.
	WorkerProcs int
	WorkerBin   string
	// Webhook delivers through a loopback HTTP receiver.
	Webhook bool
	// UUIDs registers UUID-like user IDs instead of integer-like ones.
	UUIDs bool
	// Run names the run in the table and picks its keys of the JSON line
	// ("many_locations", "ten_million", "uuid", "defaults"; empty for the
	// main run).
	Run string
	// Sizes, when set, are the subscribers of each location (Users and
	// Locations are then their sum and count).
	Sizes []int
	// EngineGroups leaves the reminder's group count to the engine instead
	// of sizing groups to GroupSize.
	EngineGroups bool
	// EngineDefaults runs the engine on its default settings: no group
	// count, chunk size or worker concurrency set by the benchmark.
	EngineDefaults bool
	// Policy sets up the delivery policy run: the reminder has category
	// "marketing" (quiet: drop) under a cap of 3 a day, 10% of the users
	// opted out of the category and another 10% are in their quiet hours
	// at the fire.
	Policy bool
	// Lead is how far ahead of the end of registration the instant is.
	// Defaults to 2s and 1ms a location.
	Lead time.Duration
	// Timeout bounds the wait for the last delivery. Defaults to 10m.
	Timeout time.Duration
	// Profile, if set, receives a CPU profile of this process from just
	// before the instant to the last delivery.
	Profile io.Writer
	// RegisterProfile, if set, receives a CPU profile of this process
	// (the API, the benchmark's clients and the workers) during
	// registration.
	RegisterProfile io.Writer
	Log             *slog.Logger
}

func (c *Config) defaults() {
	if c.Users == 0 {
		c.Users = 1_000_000
	}
	if c.Locations == 0 {
		c.Locations = 4
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = 500
	}
	if c.Workers == 0 {
		c.Workers = 2
	}
	if len(c.Sizes) > 0 {
		c.Users, c.Locations = 0, len(c.Sizes)
		for _, n := range c.Sizes {
			c.Users += n
		}
	}
	if c.Lead == 0 {
		// Time to plan the fire; a reminder of thousands of locations
		// takes longer to save.
		c.Lead = 2*time.Second + time.Duration(c.Locations)*time.Millisecond
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Result is one run's figures.
type Result struct {
	Run                string   `json:"run,omitempty"`
	System             string   `json:"system"`
	Users              int      `json:"users"`
	Sink               string   `json:"sink"`
	Workers            string   `json:"workers"`
	Delivered          int64    `json:"delivered"`
	RegisterSeconds    float64  `json:"register_s"`
	RegisterPerSecond  float64  `json:"register_per_s"`
	RedisBytesPerUser  float64  `json:"redis_bytes_per_user"`
	FireToLastMs       float64  `json:"fire_to_last_ms"`
	DeliveriesPerSec   float64  `json:"deliveries_per_s"`
	LatenessP50Ms      float64  `json:"lateness_p50_ms"`
	LatenessP99Ms      float64  `json:"lateness_p99_ms"`
	LatenessMaxMs      float64  `json:"lateness_max_ms"`
	CPUSecondsPerMilln *float64 `json:"cpu_s_per_million,omitempty"` // nil: not measured
	CPU                cpuTimes `json:"cpu_s"`
	// Locations is the number of places the users are spread over.
	Locations int `json:"locations"`
	// Tasks is the number of queue tasks processed, over every queue of
	// the run (0 for the peer: one a user).
	Tasks int64 `json:"tasks,omitempty"`
	// IndexBytesPerUser is the MEMORY USAGE (SAMPLES 0) of every key of
	// the membership index, per subscriber; nil when it could not be read.
	IndexBytesPerUser *float64 `json:"index_bytes_per_user,omitempty"`
	// MySQLBytes is the data and index size of the run's database after
	// registration (information_schema, after ANALYZE TABLE).
	MySQLBytes int64 `json:"mysql_bytes,omitempty"`
	// Policy run: users the policy was to leave out (opted out or quiet),
	// and the Redis round trips per chunk it made deciding.
	PolicySkipped            int64   `json:"policy_skipped,omitempty"`
	PolicyChunks             int64   `json:"policy_chunks,omitempty"`
	PolicyRoundTripsPerChunk float64 `json:"policy_round_trips_per_chunk,omitempty"`
	Complete                 bool    `json:"complete"`
	Timeline                 []Point `json:"-"`
}

// Receiver is the loopback webhook receiver: it decodes each batch and
// counts it into a Counter.
type Receiver struct{ C *Counter }

// ServeHTTP takes one webhook batch.
func (r Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var p webhook.Payload
	b, err := io.ReadAll(req.Body)
	if err == nil {
		err = json.NewDecoder(bytes.NewReader(b)).Decode(&p)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.C.record(groupKey(p.Occurrence, p.Group), len(p.Users))
	w.WriteHeader(http.StatusNoContent)
}

func finish(r *Result, c *Counter, fireAt time.Time, cpu cpuTimes, pts []Point) {
	r.CPU = cpu
	r.Delivered = c.Delivered()
	r.Complete = r.Delivered >= int64(r.Users)-r.PolicySkipped
	last := c.Last()
	r.FireToLastMs = ms(last.Sub(fireAt))
	if s := last.Sub(fireAt).Seconds(); s > 0 {
		r.DeliveriesPerSec = float64(r.Delivered) / s
	}
	late := c.Lateness(fireAt)
	r.LatenessP50Ms = ms(percentile(late, 50))
	r.LatenessP99Ms = ms(percentile(late, 99))
	r.LatenessMaxMs = ms(percentile(late, 100))
	if sum := cpu.sum(); sum != nil && r.Delivered > 0 {
		perM := *sum / float64(r.Delivered) * 1e6
		r.CPUSecondsPerMilln = &perM
	}
	r.Timeline = pts
}

// ErrIncomplete is a run whose deliveries did not all arrive before its
// timeout; its Result is kept, with Complete false.
var ErrIncomplete = errors.New("timed out before every delivery")

// wait blocks until c has n deliveries or timeout passes.
func wait(ctx context.Context, c *Counter, n int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for c.Delivered() < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %d of %d delivered", ErrIncomplete, c.Delivered(), n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// startReceiver serves a Receiver counting into c on loopback and returns
// its URL, a webhook sender posting to it, and a function that stops it.
func startReceiver(c *Counter, log *slog.Logger) (string, *webhook.Sender, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	srv := &http.Server{Handler: Receiver{c}}
	go func() { _ = srv.Serve(ln) }() // ErrServerClosed at the end of the run
	url := "http://" + ln.Addr().String() + "/hook"
	s, err := webhook.New(webhook.Config{URL: url, MaxConns: 128}, log)
	if err != nil {
		srv.Close()
		return "", nil, nil, err
	}
	return url, s, func() { srv.Close() }, nil
}

// measure waits for the instant, then records deliveries into c until all
// of r.Users but r.PolicySkipped arrived or timeout passed, and fills r's figures. CPU is
// counted from just before the instant: this process, Redis, the MariaDB
// server of mysqlDSN and the processes pids (see cpu.go).
func measure(ctx context.Context, r *Result, c *Counter, fireAt time.Time, timeout time.Duration, profile io.Writer, rdb redis.UniversalClient, mysqlDSN string, pids ...int) error {
	time.Sleep(time.Until(fireAt.Add(-200 * time.Millisecond)))
	if profile != nil && pprof.StartCPUProfile(profile) == nil {
		defer pprof.StopCPUProfile()
	}
	cpu := newCPUMeter(ctx, rdb, mysqlDSN, pids...)
	done := make(chan struct{})
	pts := sample(fireAt, c.Delivered, done)
	err := wait(ctx, c, int64(r.Users)-r.PolicySkipped, timeout)
	close(done)
	finish(r, c, fireAt, cpu.Since(ctx), <-pts)
	return err
}
