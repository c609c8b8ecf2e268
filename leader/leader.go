// Package leader elects one coordinator replica to schedule, through a lock
// in Redis: SET key id NX PX ttl to take it, a check-and-extend script to
// renew it every ttl/3, a check-and-delete script to give it up.
//
// A leader that stops (shutdown, SIGTERM) deletes the lock and announces it
// on a pub/sub channel named after the key; the other replicas, which
// campaign every ttl/3, campaign at once when they hear it, so a planned
// handover leaves no gap. A leader that dies without a word is replaced when
// its lock expires, at most ttl after its last renewal.
//
// A leader that cannot renew before its lease runs out stops leading at once
// (its context is cancelled) even if Redis is unreachable, so two replicas
// lead at the same time for at most the clock drift between them. Scheduling
// does not rely on that alone: firing an occurrence is a compare-and-set in
// MySQL, so a brief overlap cannot enqueue a group twice.
package leader

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// Config configures an elector.
type Config struct {
	// Key is the Redis key of the lock. Required.
	Key string
	// ID names this replica. Required.
	ID string
	// TTL is how long the lock lasts without renewal. Defaults to DefaultTTL (10s).
	TTL time.Duration
}

// Elector takes part in the election.
type Elector struct {
	cfg Config
	rdb redis.UniversalClient
	log *slog.Logger
}

// DefaultTTL is how long leadership lasts without renewal.
const DefaultTTL = 10 * time.Second

// New returns an elector.
func New(cfg Config, rdb redis.UniversalClient, log *slog.Logger) *Elector {
	cfg.TTL = cmp.Or(cfg.TTL, DefaultTTL)
	return &Elector{cfg: cfg, rdb: rdb, log: log}
}

var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// Run campaigns until ctx is cancelled. Each time this replica becomes
// leader it calls lead with a context that is cancelled when leadership is
// lost; lead should return when its context is done.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context) error) error {
	retry := e.cfg.TTL / 3
	sub := e.rdb.Subscribe(ctx, e.cfg.Key)
	defer sub.Close()
	released := sub.Channel()
	for {
		// The lock expires TTL after Redis sets it, which is no earlier than
		// when the command is sent.
		sent := time.Now()
		ok, err := e.rdb.SetNX(ctx, e.cfg.Key, e.cfg.ID, e.cfg.TTL).Result()
		if err != nil && ctx.Err() == nil {
			e.log.Warn("leader election", "err", err)
		}
		if ok {
			e.log.Info("became leader")
			if err := e.lead(ctx, lead, sent.Add(e.cfg.TTL)); err != nil {
				return err
			}
			e.log.Info("stopped leading")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-released:
		case <-time.After(retry):
		}
	}
}

// lead runs lead while this replica holds the lock, which expires at
// deadline unless renewed.
func (e *Elector) lead(ctx context.Context, lead func(ctx context.Context) error, deadline time.Time) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- lead(lctx) }()
	tick := time.NewTicker(e.cfg.TTL / 3)
	defer tick.Stop()
	defer func() {
		rctx, c := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer c()
		if n, _ := releaseScript.Run(rctx, e.rdb, []string{e.cfg.Key}, e.cfg.ID).Int(); n == 1 {
			e.rdb.Publish(rctx, e.cfg.Key, e.cfg.ID)
		}
	}()
	for {
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		case <-tick.C:
			sent := time.Now()
			n, err := e.renew(ctx, deadline.Add(-e.cfg.TTL/3))
			switch {
			case err == nil && n == 1:
				deadline = sent.Add(e.cfg.TTL)
			case err == nil:
				e.log.Warn("leadership taken over")
				cancel()
				<-done //nolint:errcheck // waits for the renewal to stop; leadership is over either way
				return nil
			case !time.Now().Before(deadline.Add(-e.cfg.TTL / 3)):
				e.log.Warn("cannot renew leadership", "err", err)
				cancel()
				<-done //nolint:errcheck // waits for the renewal to stop; leadership is over either way
				return nil
			}
		}
	}
}

// renew extends the lock, giving up at by. It does not rely on the Redis
// client to honour the context's deadline (unless ContextTimeoutEnabled is
// set, go-redis ignores it and waits for its own read timeout, 3s by
// default), so that a leader cut off from Redis steps down before its lock
// can expire.
func (e *Elector) renew(ctx context.Context, by time.Time) (int, error) {
	rctx, cancel := context.WithDeadline(ctx, by)
	defer cancel()
	type result struct {
		n   int
		err error
	}
	res := make(chan result, 1)
	go func() {
		n, err := renewScript.Run(rctx, e.rdb, []string{e.cfg.Key}, e.cfg.ID, e.cfg.TTL.Milliseconds()).Int()
		res <- result{n, err}
	}()
	select {
	case r := <-res:
		return r.n, r.err
	case <-rctx.Done():
		return 0, rctx.Err()
	}
}
