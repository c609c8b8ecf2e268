package leader_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/leader"
)

// board records who leads. A lead function joins it when called and leaves
// it when its context is done.
type board struct {
	current  atomic.Int32 // replicas leading now
	most     atomic.Int32 // the most that ever led at once
	terms    atomic.Int32 // lead calls so far
	mu       sync.Mutex
	leader   string // the replica leading now, "" if none
	canceled map[string]int
}

func newBoard() *board { return &board{canceled: map[string]int{}} }

func (b *board) lead(id string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		n := b.current.Add(1)
		for {
			m := b.most.Load()
			if n <= m || b.most.CompareAndSwap(m, n) {
				break
			}
		}
		b.terms.Add(1)
		b.mu.Lock()
		b.leader = id
		b.mu.Unlock()

		<-ctx.Done()

		b.mu.Lock()
		if b.leader == id {
			b.leader = ""
		}
		b.canceled[id]++
		b.mu.Unlock()
		b.current.Add(-1)
		return ctx.Err()
	}
}

func (b *board) who() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.leader
}

func (b *board) cancels(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.canceled[id]
}

// replica runs an elector until stop is called, which returns what Run
// returned.
type replica struct {
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, rdb redis.UniversalClient, cfg leader.Config, lead func(context.Context) error) *replica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{cancel: cancel, done: make(chan error, 1)}
	e := leader.New(cfg, rdb, testenv.Logger(t))
	go func() { r.done <- e.Run(ctx, lead) }()
	t.Cleanup(func() { _ = r.stop(t) })
	return r
}

func (r *replica) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
		return nil
	}
}

// renewals waits until the key's expiry has been pushed back n times.
func waitRenewals(t *testing.T, rdb *redis.Client, key string, n int, timeout time.Duration) {
	t.Helper()
	var last time.Duration
	seen := 0
	testenv.WaitUntil(t, timeout, "the lock to be renewed", func() bool {
		ttl, err := rdb.PTTL(context.Background(), key).Result()
		require.NoError(t, err)
		if ttl > last && last > 0 {
			seen++
		}
		last = ttl
		return seen >= n
	})
}

func TestOneLeaderAndFailover(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	const ttl = 300 * time.Millisecond
	key := env.Prefix + "leader"
	b := newBoard()
	a := start(t, env.Redis, leader.Config{Key: key, ID: "a", TTL: ttl}, b.lead("a"))
	bb := start(t, env.Redis, leader.Config{Key: key, ID: "b", TTL: ttl}, b.lead("b"))
	replicas := map[string]*replica{"a": a, "b": bb}

	testenv.WaitUntil(t, 5*time.Second, "a leader", func() bool { return b.who() != "" })
	first := b.who()
	require.Equal(t, first, env.Redis.Get(ctx, key).Val())

	// The leader keeps renewing and the other replica keeps waiting.
	waitRenewals(t, env.Redis, key, 5, 5*time.Second)
	require.Equal(t, first, b.who())
	require.EqualValues(t, 1, b.terms.Load())
	require.EqualValues(t, 1, b.most.Load())

	// The leader shuts down: it gives the lock up and the other takes over.
	require.NoError(t, replicas[first].stop(t))
	require.Equal(t, 1, b.cancels(first))
	other := map[string]string{"a": "b", "b": "a"}[first]
	testenv.WaitUntil(t, 4*ttl, "the other replica to take over", func() bool { return b.who() == other })
	require.Equal(t, other, env.Redis.Get(ctx, key).Val())
	require.EqualValues(t, 2, b.terms.Load())
	require.EqualValues(t, 1, b.most.Load(), "two replicas led at once")

	require.NoError(t, replicas[other].stop(t))
	require.Equal(t, 1, b.cancels(other))
	require.Zero(t, b.current.Load())
	require.Zero(t, env.Redis.Exists(ctx, key).Val(), "the lock is released on shutdown")
}

func TestManyReplicasNeverOverlap(t *testing.T) {
	env := testenv.NewRedis(t)
	const ttl = 200 * time.Millisecond
	key := env.Prefix + "leader"
	b := newBoard()
	ids := []string{"r0", "r1", "r2", "r3"}
	reps := make([]*replica, len(ids))
	for i, id := range ids {
		reps[i] = start(t, env.Redis, leader.Config{Key: key, ID: id, TTL: ttl}, b.lead(id))
	}
	// Stop the leader three times in a row; each time another takes over.
	stopped := map[string]bool{}
	for range 3 {
		testenv.WaitUntil(t, 4*ttl, "a leader", func() bool { id := b.who(); return id != "" && !stopped[id] })
		id := b.who()
		stopped[id] = true
		for i := range ids {
			if ids[i] == id {
				require.NoError(t, reps[i].stop(t))
			}
		}
	}
	testenv.WaitUntil(t, 4*ttl, "the last replica to lead", func() bool { id := b.who(); return id != "" && !stopped[id] })
	require.EqualValues(t, 4, b.terms.Load())
	require.EqualValues(t, 1, b.most.Load(), "two replicas led at once")
}

func TestStepDownWhenLockIsLost(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(ctx context.Context, rdb *redis.Client, key string) error
		// retake: the replica can lead again afterwards.
		retake bool
	}{
		{"deleted", func(ctx context.Context, rdb *redis.Client, key string) error {
			return rdb.Del(ctx, key).Err()
		}, true},
		{"overwritten", func(ctx context.Context, rdb *redis.Client, key string) error {
			return rdb.Set(ctx, key, "intruder", time.Minute).Err()
		}, false},
		{"overwritten without expiry", func(ctx context.Context, rdb *redis.Client, key string) error {
			return rdb.Set(ctx, key, "intruder", 0).Err()
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testenv.NewRedis(t)
			ctx := context.Background()
			const ttl = 300 * time.Millisecond
			key := env.Prefix + "leader"
			b := newBoard()
			r := start(t, env.Redis, leader.Config{Key: key, ID: "a", TTL: ttl}, b.lead("a"))
			testenv.WaitUntil(t, 5*time.Second, "a to lead", func() bool { return b.who() == "a" })

			require.NoError(t, tc.tamper(ctx, env.Redis, key))
			testenv.WaitUntil(t, 3*ttl, "a to step down", func() bool { return b.cancels("a") == 1 })
			if tc.retake {
				testenv.WaitUntil(t, 3*ttl, "a to lead again", func() bool { return b.terms.Load() == 2 && b.who() == "a" })
			} else {
				// Stepping down must not delete the other holder's lock.
				require.Equal(t, "intruder", env.Redis.Get(ctx, key).Val())
				require.EqualValues(t, 1, b.terms.Load())
				require.Empty(t, b.who())
			}
			require.NoError(t, r.stop(t))
			if !tc.retake {
				require.Equal(t, "intruder", env.Redis.Get(ctx, key).Val())
			}
		})
	}
}

func TestLeadErrorEndsRun(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	key := env.Prefix + "leader"
	boom := errors.New("boom")
	e := leader.New(leader.Config{Key: key, ID: "a", TTL: 300 * time.Millisecond}, env.Redis, testenv.Logger(t))
	err := e.Run(ctx, func(ctx context.Context) error { return boom })
	require.ErrorIs(t, err, boom)
	require.Zero(t, env.Redis.Exists(ctx, key).Val(), "the lock is released")

	// A lead function that returns nil early gives the lock up and campaigns
	// again.
	var calls atomic.Int32
	ctx2, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- e.Run(ctx2, func(ctx context.Context) error {
			if calls.Add(1) < 3 {
				return nil
			}
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	testenv.WaitUntil(t, 5*time.Second, "a third term", func() bool { return calls.Load() == 3 })
	cancel()
	require.NoError(t, <-done)
}

// proxy forwards TCP to Redis until it is told to drop everything on the
// floor, like a network partition: connections stay open, nothing answers.
type proxy struct {
	ln        net.Listener
	target    string
	blackhole atomic.Bool
	mu        sync.Mutex
	conns     []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go p.pipe(s, c)
		go p.pipe(c, s)
	}
}

func (p *proxy) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if p.blackhole.Load() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

func TestStepDownBeforeLeaseExpiresWhenRedisHangs(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	opt, err := redis.ParseURL(env.RedisURL)
	require.NoError(t, err)
	p := newProxy(t, opt.Addr)
	opt.Addr = p.ln.Addr().String()
	opt.MaxRetries = -1
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })

	const ttl = 900 * time.Millisecond
	key := env.Prefix + "leader"
	var leading atomic.Bool
	stepDown := make(chan bool, 1) // whether the lock was still alive then
	r := start(t, rdb, leader.Config{Key: key, ID: "a", TTL: ttl}, func(lctx context.Context) error {
		leading.Store(true)
		<-lctx.Done()
		stepDown <- env.Redis.Exists(ctx, key).Val() == 1
		return lctx.Err()
	})
	testenv.WaitUntil(t, 5*time.Second, "a to lead", leading.Load)
	waitRenewals(t, env.Redis, key, 1, 5*time.Second)

	p.blackhole.Store(true)
	var alive bool
	select {
	case alive = <-stepDown:
	case <-time.After(3 * ttl):
		t.Fatal("the leader did not step down while Redis was unreachable")
	}
	require.True(t, alive, "the leader stepped down only after its lock had expired: another replica may have led with it")
	p.close()
	require.NoError(t, r.stop(t))
}
