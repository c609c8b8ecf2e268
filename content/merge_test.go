package content_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/content"
	"github.com/chime-dev/chime/internal/testenv"
)

func users(from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(from + i)
	}
	return out
}

func TestMergerFilter(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	m := content.NewMerger(content.MergerConfig{Prefix: env.Prefix, Window: time.Minute}, env.Redis)

	// Occurrence 1 reaches users 0-99 first: all are kept.
	keep, err := m.Filter(ctx, users(0, 100), "sale-content", "1")
	require.NoError(t, err)
	require.Equal(t, users(0, 100), keep)

	// A retry of occurrence 1 (a chunk sent again after a crash) keeps them.
	keep, err = m.Filter(ctx, users(50, 100), "sale-content", "1")
	require.NoError(t, err)
	require.Equal(t, users(50, 100), keep)

	// Occurrence 2 with the same content: users 0-149 had it, 150-199 did not.
	keep, err = m.Filter(ctx, users(0, 200), "sale-content", "2")
	require.NoError(t, err)
	require.Equal(t, users(150, 50), keep)

	// Other content is not merged.
	keep, err = m.Filter(ctx, users(0, 10), "fajr-content", "3")
	require.NoError(t, err)
	require.Equal(t, users(0, 10), keep)

	// Every key lives for the window, no longer.
	keys, err := env.Redis.Keys(ctx, env.Prefix+"merge:*").Result()
	require.NoError(t, err)
	require.Len(t, keys, 210)
	ttl, err := env.Redis.PTTL(ctx, keys[0]).Result()
	require.NoError(t, err)
	require.Greater(t, ttl, 50*time.Second)
	require.LessOrEqual(t, ttl, time.Minute)
}

func TestMergerWindowEnds(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	m := content.NewMerger(content.MergerConfig{Prefix: env.Prefix, Window: 300 * time.Millisecond}, env.Redis)
	keep, err := m.Filter(ctx, users(0, 3), "k", "1")
	require.NoError(t, err)
	require.Len(t, keep, 3)
	keep, err = m.Filter(ctx, users(0, 3), "k", "2")
	require.NoError(t, err)
	require.Empty(t, keep, "within the window")
	// After the window Redis has dropped the marks: the same content is new
	// again.
	testenv.WaitUntil(t, 5*time.Second, "merge marks expire", func() bool {
		keys, err := env.Redis.Keys(ctx, env.Prefix+"merge:*").Result()
		return err == nil && len(keys) == 0
	})
	keep, err = m.Filter(ctx, users(0, 3), "k", "3")
	require.NoError(t, err)
	require.Len(t, keep, 3)
}

func TestMergerNoContentKey(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	m := content.NewMerger(content.MergerConfig{Prefix: env.Prefix, Window: time.Minute}, env.Redis)
	for origin := range 2 {
		keep, err := m.Filter(ctx, users(0, 5), "", fmt.Sprint(origin))
		require.NoError(t, err)
		require.Len(t, keep, 5, "a reminder tagged no-merge is never merged")
	}
	keys, err := env.Redis.Keys(ctx, env.Prefix+"merge:*").Result()
	require.NoError(t, err)
	require.Empty(t, keys)
}

func TestMergerDisabled(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	m := content.NewMerger(content.MergerConfig{Prefix: env.Prefix}, env.Redis) // Window 0
	for origin := range 2 {
		keep, err := m.Filter(ctx, users(0, 5), "k", fmt.Sprint(origin))
		require.NoError(t, err)
		require.Len(t, keep, 5)
	}
	keys, err := env.Redis.Keys(ctx, env.Prefix+"merge:*").Result()
	require.NoError(t, err)
	require.Empty(t, keys, "a disabled merger writes nothing")
}

func TestMergerRedisDown(t *testing.T) {
	// Fault: Redis does not answer (a client of a port where nothing
	// listens). Checks that Filter returns every user and the error, so
	// delivery goes on without merging.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	m := content.NewMerger(content.MergerConfig{Window: time.Minute, Timeout: time.Second}, rdb)
	keep, err := m.Filter(context.Background(), users(0, 4), "k", "1")
	require.Error(t, err)
	require.Equal(t, users(0, 4), keep)
}

// BenchmarkMergerFilter measures merging per user: chunks of 500 users,
// each a new (user, content) pair, one pipelined round trip per chunk.
func BenchmarkMergerFilter(b *testing.B) {
	env := testenv.NewRedis(b)
	ctx := context.Background()
	m := content.NewMerger(content.MergerConfig{Prefix: env.Prefix, Window: time.Minute}, env.Redis)
	chunk := users(0, 500)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		keep, err := m.Filter(ctx, chunk, fmt.Sprint("content-", i), "1")
		if err != nil || len(keep) != len(chunk) {
			b.Fatal(err, len(keep))
		}
	}
	b.ReportMetric(float64(b.N*len(chunk))/b.Elapsed().Seconds(), "users/s")
}
