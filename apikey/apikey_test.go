package apikey

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/store"
)

// start runs a resolver with cfg (its channel the test's own) on rdb until
// the test ends, and waits until it listens.
func start(t *testing.T, env *testenv.Env, rdb redis.UniversalClient, cfg Config) *Resolver {
	t.Helper()
	cfg.Channel = env.Prefix + "keys"
	r := New(cfg, env.DB, rdb, env.Log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	testenv.WaitUntil(t, 10*time.Second, "the resolver to subscribe", r.Listening)
	return r
}

func newApp(t *testing.T, env *testenv.Env, name string) (store.App, string) {
	t.Helper()
	app, _, key, err := store.CreateApp(context.Background(), env.DB, name, "")
	require.NoError(t, err)
	return app, key
}

// revokeRow revokes key in the database only, telling no replica.
func revokeRow(t *testing.T, env *testenv.Env, key string) {
	t.Helper()
	require.NoError(t, env.DB.Model(&store.APIKey{}).Where("hash = ?", store.HashKey(key)).Update("revoked_at", time.Now().UTC()).Error)
}

func randomKey() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return store.KeyScheme + hex.EncodeToString(b[:])
}

// Injected: 500 random keys sprayed at a resolver that caches 10 working
// keys and 50 misses, and 20 working keys. Checked: both caches stay within
// their bounds, and the spray does not evict a working key (revoked in the
// database only, it is still answered from the cache).
func TestCachesAreBounded(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	r := start(t, env, env.Redis, Config{Size: 10, Misses: 50, TTL: time.Hour, MissTTL: time.Hour})
	app, key := newApp(t, env, "shop")
	got, err := r.App(ctx, key)
	require.NoError(t, err)
	require.Equal(t, app.ID, got)

	for range 500 {
		_, err := r.App(ctx, randomKey())
		require.ErrorIs(t, err, store.ErrNotFound)
	}
	require.LessOrEqual(t, r.misses.Len(), 50)
	revokeRow(t, env, key)
	got, err = r.App(ctx, key)
	require.NoError(t, err, "misses do not evict working keys")
	require.Equal(t, app.ID, got)

	for i := range 20 {
		_, k := newApp(t, env, "app")
		_, err := r.App(ctx, k)
		require.NoError(t, err, "key %d", i)
	}
	require.Equal(t, 10, r.hits.Len())
	require.LessOrEqual(t, r.misses.Len(), 50)
}

// Injected: a cached key revoked in the database only, then the resolver's
// subscription connection killed in Redis (CLIENT KILL), so that any
// announcement in between would be lost. Checked: the resolver empties its
// cache, refuses the key, and listens again.
func TestLostSubscriptionEmptiesTheCache(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	opt, err := redis.ParseURL(env.RedisURL)
	require.NoError(t, err)
	opt.ClientName = "apikey-test-" + testenv.ID()
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	r := start(t, env, rdb, Config{TTL: 24 * time.Hour})
	_, key := newApp(t, env, "shop")
	_, err = r.App(ctx, key)
	require.NoError(t, err)
	revokeRow(t, env, key)
	_, err = r.App(ctx, key)
	require.NoError(t, err, "the key is cached")

	// Only this test's subscriber carries its name; other tests share the
	// server.
	list, err := env.Redis.ClientList(ctx).Result()
	require.NoError(t, err)
	var id string
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, " name="+opt.ClientName+" ") && strings.Contains(line, "sub=1") {
			id = strings.TrimPrefix(strings.Fields(line)[0], "id=")
		}
	}
	require.NotEmpty(t, id, "the subscriber's connection in CLIENT LIST:\n%s", list)
	require.NoError(t, env.Redis.Do(ctx, "CLIENT", "KILL", "ID", id).Err())

	testenv.WaitUntil(t, 10*time.Second, "the resolver to refuse the key", func() bool {
		_, err := r.App(ctx, key)
		return err != nil
	})
	testenv.WaitUntil(t, 10*time.Second, "the resolver to listen again", r.Listening)
}

// Injected: a key used at t, t+30s and t+61s by a clock. Checked: its last
// use is written at t and t+61s only.
func TestLastUseIsRecordedOncePerInterval(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC))
	r := start(t, env, env.Redis, Config{TTL: time.Hour, Now: clk.Now})
	_, key := newApp(t, env, "shop")
	lastUse := func() time.Time {
		var k store.APIKey
		require.NoError(t, env.DB.Where("hash = ?", store.HashKey(key)).Take(&k).Error)
		require.NotNil(t, k.LastUsedAt)
		return k.LastUsedAt.UTC()
	}
	t0 := clk.Now()
	_, err := r.App(ctx, key)
	require.NoError(t, err)
	require.Equal(t, t0, lastUse())
	clk.Advance(30 * time.Second)
	_, err = r.App(ctx, key)
	require.NoError(t, err)
	require.Equal(t, t0, lastUse())
	clk.Advance(31 * time.Second)
	_, err = r.App(ctx, key)
	require.NoError(t, err)
	require.Equal(t, t0.Add(61*time.Second), lastUse())
}

// Injected: a resolver that is not run. Checked: it caches no working key
// (it would hear no revocation), so a row revoked in the database is
// refused at once.
func TestNotListeningCachesNoWorkingKey(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	r := New(Config{Channel: env.Prefix + "keys", TTL: time.Hour}, env.DB, env.Redis, env.Log)
	_, key := newApp(t, env, "shop")
	_, err := r.App(ctx, key)
	require.NoError(t, err)
	require.Zero(t, r.hits.Len())
	revokeRow(t, env, key)
	_, err = r.App(ctx, key)
	require.ErrorIs(t, err, store.ErrNotFound)
}
