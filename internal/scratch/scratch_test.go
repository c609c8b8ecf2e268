package scratch_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/scratch"
	"github.com/chime-dev/chime/internal/testenv"
)

// TestCleanRedis runs against a real Redis: it writes more keys than one
// UNLINK batch under a prefix and a queue, and a key of another run, and
// checks that only the other run's key and queue survive.
func TestCleanRedis(t *testing.T) {
	e := testenv.NewRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	other := e.Prefix + "other:"
	for i := range 1200 {
		require.NoError(t, e.Redis.Set(ctx, e.Prefix+"run:"+strconv.Itoa(i), "x", 0).Err())
	}
	require.NoError(t, e.Redis.Set(ctx, "asynq:{"+e.Queue+"}:pending", "x", 0).Err())
	require.NoError(t, e.Redis.SAdd(ctx, "asynq:queues", e.Queue, e.Queue+"-other").Err())
	require.NoError(t, e.Redis.Set(ctx, other+"keep", "x", 0).Err())
	t.Cleanup(func() { e.Redis.SRem(context.Background(), "asynq:queues", e.Queue+"-other") })

	scratch.CleanRedis(ctx, e.Redis, e.Prefix+"run:", e.Queue)

	n, err := e.Redis.Exists(ctx, e.Prefix+"run:0", e.Prefix+"run:1199", "asynq:{"+e.Queue+"}:pending").Result()
	require.NoError(t, err)
	require.Zero(t, n)
	queued, err := e.Redis.SMIsMember(ctx, "asynq:queues", e.Queue, e.Queue+"-other").Result()
	require.NoError(t, err)
	require.Equal(t, []bool{false, true}, queued)
	require.Equal(t, int64(1), e.Redis.Exists(ctx, other+"keep").Val())

	// An empty prefix unlinks nothing but the queue's keys.
	scratch.CleanRedis(ctx, e.Redis, "", e.Queue)
	require.Equal(t, int64(1), e.Redis.Exists(ctx, other+"keep").Val())
}
