// Package apikey resolves API keys to their apps for the API.
//
// Each replica keeps the answers in two bounded LRU caches: keys that work
// (for at most TTL) and keys that do not (for at most MissTTL), so a client
// spraying random keys evicts only other misses and memory stays bounded.
// A revocation, by the API on any replica or by `chime app key revoke`, is
// announced on a Redis channel every replica subscribes to, and each drops
// the key at once; the TTL is the safety net for announcements lost while a
// replica was not listening. A replica caches working keys only while it
// listens: when the subscription fails it empties the cache and asks the
// database on every request until it has subscribed again.
package apikey

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/store"
)

// Defaults of Config.
const (
	DefaultSize         = 10000
	DefaultMisses       = 10000
	DefaultTTL          = 10 * time.Second
	DefaultMissTTL      = 5 * time.Second
	DefaultPingInterval = 5 * time.Second
	// touchTimeout bounds recording a key's use, which no request waits on
	// for long.
	touchTimeout = 2 * time.Second
)

// Config configures a Resolver.
type Config struct {
	// Channel is the Redis channel revocations are announced on. Without it
	// Run returns at once and working keys are not cached.
	Channel string
	// Size bounds the cached working keys. Defaults to 10,000.
	Size int
	// Misses bounds the cached unknown, revoked or expired keys. Defaults to
	// 10,000.
	Misses int
	// TTL is how long a working key is cached: the longest a revocation
	// whose announcement was lost goes unnoticed. Defaults to 10s.
	TTL time.Duration
	// MissTTL is how long a key that does not work is cached. Defaults to 5s.
	MissTTL time.Duration
	// PingInterval is how long the subscription may be silent before it is
	// pinged; a ping unanswered for as long again counts as a lost
	// subscription. Defaults to 5s.
	PingInterval time.Duration
	// Now tells the time keys expire by. Defaults to time.Now.
	Now func() time.Time
}

// Resolver tells which app an API key belongs to.
type Resolver struct {
	cfg    Config
	db     *gorm.DB
	rdb    redis.UniversalClient
	log    *slog.Logger
	hits   *lru.Cache[string, *entry]    // key hash -> its app
	misses *lru.Cache[string, time.Time] // key hash -> cached until

	// mu orders caching a looked-up key against revocations: a key read
	// from the database before a revocation arrived is not cached after it.
	mu        sync.Mutex
	gen       uint64 // bumped by every revocation and (un)subscription
	listening bool   // working keys are cached only while subscribed
}

type entry struct {
	app, id int64
	until   time.Time    // min(cached + TTL, the key's expiry)
	touched atomic.Int64 // the last recorded use, in Unix nanoseconds
}

// New returns a resolver reading keys from db and revocations from rdb.
func New(cfg Config, db *gorm.DB, rdb redis.UniversalClient, log *slog.Logger) *Resolver {
	cfg.Size = cmp.Or(cfg.Size, DefaultSize)
	cfg.Misses = cmp.Or(cfg.Misses, DefaultMisses)
	cfg.TTL = cmp.Or(cfg.TTL, DefaultTTL)
	cfg.MissTTL = cmp.Or(cfg.MissTTL, DefaultMissTTL)
	cfg.PingInterval = cmp.Or(cfg.PingInterval, DefaultPingInterval)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hits, err := lru.New[string, *entry](cfg.Size)
	if err != nil {
		panic(fmt.Sprintf("apikey: Size %d: %v", cfg.Size, err))
	}
	misses, err := lru.New[string, time.Time](cfg.Misses)
	if err != nil {
		panic(fmt.Sprintf("apikey: Misses %d: %v", cfg.Misses, err))
	}
	return &Resolver{cfg: cfg, db: db, rdb: rdb, log: log, hits: hits, misses: misses}
}

// App returns the app of key, or store.ErrNotFound if the key is unknown,
// revoked or expired.
func (r *Resolver) App(ctx context.Context, key string) (int64, error) {
	app, _, err := r.Key(ctx, key)
	return app, err
}

// Key is App with the key's ID, which the audit log names the key by.
func (r *Resolver) Key(ctx context.Context, key string) (app, id int64, err error) {
	hash := store.HashKey(key)
	now := r.cfg.Now()
	if e, ok := r.hits.Get(hash); ok && now.Before(e.until) {
		r.touch(ctx, e, now)
		return e.app, e.id, nil
	}
	if until, ok := r.misses.Get(hash); ok && now.Before(until) {
		return 0, 0, store.ErrNotFound
	}
	r.mu.Lock()
	gen := r.gen
	r.mu.Unlock()
	k, err := store.ActiveKey(ctx, r.db, hash, now)
	if errors.Is(err, store.ErrNotFound) {
		r.misses.Add(hash, now.Add(r.cfg.MissTTL))
		return 0, 0, err
	}
	if err != nil {
		return 0, 0, fmt.Errorf("look up key: %w", err)
	}
	e := &entry{app: k.AppID, id: k.ID, until: now.Add(r.cfg.TTL)}
	if k.ExpiresAt != nil && k.ExpiresAt.Before(e.until) {
		e.until = *k.ExpiresAt
	}
	if k.LastUsedAt != nil {
		e.touched.Store(k.LastUsedAt.UnixNano())
	}
	r.mu.Lock()
	if r.listening && r.gen == gen {
		r.hits.Add(hash, e)
	}
	r.mu.Unlock()
	r.touch(ctx, e, now)
	return k.AppID, k.ID, nil
}

// touch records the key's use, at most once per store.KeyTouchInterval per
// replica (and the query skips the write if another replica did it).
func (r *Resolver) touch(ctx context.Context, e *entry, now time.Time) {
	last := e.touched.Load()
	if now.UnixNano()-last < int64(store.KeyTouchInterval) || !e.touched.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), touchTimeout)
	defer cancel()
	if err := store.TouchKey(ctx, r.db, e.id, now); err != nil {
		// Only the key's last use is stale; the request goes on.
		r.log.Warn("record key use", "key_id", e.id, "err", err)
	}
}

// Revoked drops the key whose hash is hash from this replica's cache and
// announces it to the others.
func (r *Resolver) Revoked(ctx context.Context, hash string) error {
	r.forget(hash)
	return Announce(ctx, r.rdb, r.cfg.Channel, hash)
}

// Announce tells every replica listening on channel to drop the key whose
// hash is hash.
func Announce(ctx context.Context, rdb redis.UniversalClient, channel, hash string) error {
	if channel == "" {
		return nil
	}
	if err := rdb.Publish(ctx, channel, hash).Err(); err != nil {
		return fmt.Errorf("announce revocation: %w", err)
	}
	return nil
}

// Listening reports whether the resolver hears revocations, and so caches
// working keys.
func (r *Resolver) Listening() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.listening
}

func (r *Resolver) forget(hash string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	r.hits.Remove(hash)
}

// setListening empties the cache of working keys, whose revocations may
// have gone unheard, and caches them from now on only if on.
func (r *Resolver) setListening(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	r.hits.Purge()
	r.listening = on
}

// Run listens for revocations until ctx is cancelled.
func (r *Resolver) Run(ctx context.Context) error {
	if r.cfg.Channel == "" {
		return nil
	}
	sub := r.rdb.Subscribe(ctx, r.cfg.Channel)
	defer r.setListening(false)
	// A receive does not watch ctx; closing the subscription ends it.
	stop := context.AfterFunc(ctx, func() { sub.Close() })
	defer func() {
		if stop() {
			sub.Close()
		}
	}()
	pinged := false
	for {
		msg, err := sub.ReceiveTimeout(ctx, r.cfg.PingInterval)
		if ctx.Err() != nil {
			return nil
		}
		var ne net.Error
		switch {
		case err == nil:
			pinged = false
		case errors.As(err, &ne) && ne.Timeout() && !pinged:
			// Silence: ask, and count it lost if the answer does not come.
			pinged = true
			if err := sub.Ping(ctx); err != nil {
				r.lost(ctx, err)
			}
			continue
		default:
			// The next receive reconnects and subscribes again.
			pinged = false
			r.lost(ctx, err)
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			r.setListening(true)
		case *redis.Message:
			r.forget(m.Payload)
		case *redis.Pong:
			if !r.Listening() {
				// The subscription was slow, not lost: nothing was missed
				// that a purge at the time did not cover.
				r.setListening(true)
			}
		}
	}
}

func (r *Resolver) lost(ctx context.Context, err error) {
	if r.Listening() {
		r.log.Warn("key revocations unheard; keys are looked up on every request until subscribed again", "err", err)
	}
	r.setListening(false)
	select {
	case <-ctx.Done():
	case <-time.After(100 * time.Millisecond):
	}
}
