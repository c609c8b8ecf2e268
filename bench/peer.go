package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/sender"
)

// RunPeer measures what a Go developer would write with the same stack: for
// every user one asynq task scheduled with ProcessAt(fire), processed by an
// asynq server whose handler does the same send as Chime's worker. tuned
// sets a 1s delayed-task check interval and high concurrency; otherwise the
// server runs on asynq's defaults.
func RunPeer(ctx context.Context, cfg Config, tuned bool) (Result, error) {
	cfg.defaults()
	res := Result{System: "asynq task per user (defaults)", Users: cfg.Users, Sink: "no-op", Workers: "1 server, in-process", Locations: cfg.Locations}
	if tuned {
		res.System = "asynq task per user (tuned)"
	}
	if cfg.Webhook {
		res.Sink = "webhook"
	}
	rdb, err := chime.OpenRedis(ctx, cfg.RedisURL)
	if err != nil {
		return res, err
	}
	defer rdb.Close()
	qname := "peer-bench-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	defer cleanup(context.WithoutCancel(ctx), rdb, "", qname)

	counter := NewCounter()
	var s sender.Sender = counter
	if cfg.Webhook {
		_, hook, stopRecv, err := startReceiver(counter, cfg.Log)
		if err != nil {
			return res, err
		}
		defer stopRecv()
		s = hook
	}

	// The instant must come after every task is enqueued: allow 25k
	// enqueues a second and a second or two more.
	mem0 := usedMemory(ctx, rdb)
	fireAt := time.Now().Add(time.Duration(cfg.Users/25)*time.Millisecond + time.Second).Truncate(time.Second).Add(time.Second)
	client := asynq.NewClientFromRedisClient(rdb)
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	const par = 16
	for w := range par {
		g.Go(func() error {
			for i := w; i < cfg.Users; i += par {
				b, _ := json.Marshal(peerTask{User: strconv.Itoa(i + 1), Location: "loc-" + strconv.Itoa(i%cfg.Locations), Occurrence: 1})
				if _, err := client.EnqueueContext(gctx, asynq.NewTask("peer:remind", b), asynq.Queue(qname), asynq.ProcessAt(fireAt)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return res, fmt.Errorf("enqueue: %w", err)
	}
	res.RegisterSeconds = time.Since(start).Seconds()
	res.RegisterPerSecond = float64(cfg.Users) / res.RegisterSeconds
	res.RedisBytesPerUser = float64(usedMemory(ctx, rdb)-mem0) / float64(cfg.Users)
	if time.Now().After(fireAt) {
		cfg.Log.Warn("peer: enqueueing ended after the fire instant", "late", time.Since(fireAt))
	}

	scfg := asynq.Config{Queues: map[string]int{qname: 1}, LogLevel: asynq.ErrorLevel}
	if tuned {
		scfg.DelayedTaskCheckInterval = time.Second
		scfg.Concurrency = 256
		scfg.TaskCheckInterval = 20 * time.Millisecond
	}
	srv := asynq.NewServerFromRedisClient(rdb, scfg)
	mux := asynq.NewServeMux()
	mux.HandleFunc("peer:remind", func(ctx context.Context, t *asynq.Task) error {
		var p peerTask
		if err := json.Unmarshal(t.Payload(), &p); err != nil {
			return err
		}
		// Lateness is per user here: each task is its own group of one.
		n, _ := strconv.ParseInt(p.User, 10, 64)
		_, err := s.Send(ctx, &sender.Batch{
			Message: message.Message{Occurrence: 0, Group: int(n), Reminder: "bench", Title: "Benchmark", Body: "It is time.", Location: p.Location, FireAt: fireAt},
			Users:   []string{p.User},
		})
		return err
	})
	if err := srv.Start(mux); err != nil {
		return res, err
	}
	defer srv.Shutdown()
	err = measure(ctx, &res, counter, fireAt, cfg.Timeout, cfg.Profile, rdb, cfg.MySQLDSN)
	return res, err
}

type peerTask struct {
	User       string `json:"u"`
	Location   string `json:"l"`
	Occurrence int64  `json:"o"`
}
