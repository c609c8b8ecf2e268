package ack_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/ack"
	"github.com/chime-dev/chime/internal/testenv"
)

// A worker's finish of one group and start of the next share a pipeline.
// Injected: a redis-server of the test's own whose script cache is flushed
// (as by a restart) before each pipeline, so every script in it answers
// NOSCRIPT. Checked: each script is run again alone, once: the group
// finished once with the counts given (not twice), the next one started
// with its checkpoint, a plain GET queued with them answers, and the
// stream holds one start and one finish per group.
func TestQueuedAcksRunAgainAloneWithoutTheirScripts(t *testing.T) {
	ctx := context.Background()
	port := testenv.FreePort(t)
	testenv.RedisServer(t, port, t.TempDir(), "--save", "")
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	defer rdb.Close()
	testenv.WaitUntil(t, 30*time.Second, "the test's redis-server", func() bool { return rdb.Ping(ctx).Err() == nil })
	tr := ack.NewTracker(rdb, "q:")
	require.NoError(t, rdb.Set(ctx, "q:state", "none", 0).Err())

	l1 := ack.Lease{Group: g1, Attempt: 1, Worker: "w", Token: "w/1"}
	l2 := ack.Lease{Group: g2, Attempt: 1, Worker: "w", Token: "w/2"}
	require.NoError(t, rdb.ScriptFlush(ctx).Err())
	pipe := rdb.Pipeline()
	s1 := tr.QueueStart(ctx, pipe, l1, long, t0)
	_, err := pipe.Exec(ctx)
	require.ErrorContains(t, err, "NOSCRIPT", "the pipeline itself found the script missing")
	c1, err := s1.Claim(ctx)
	require.NoError(t, err)
	require.Equal(t, ack.StateStarted, c1.State)
	require.NoError(t, tr.Checkpoint(ctx, l1, "u1", 1, 0, 0, ack.Skips{}, long))

	require.NoError(t, rdb.ScriptFlush(ctx).Err())
	pipe = rdb.Pipeline()
	f1 := tr.QueueFinish(ctx, pipe, l1, ack.StateFinished, ack.Final{LastUser: "u3", Sent: 2}, t0)
	s2 := tr.QueueStart(ctx, pipe, l2, long, t0)
	state := pipe.Get(ctx, "q:state")
	_, _ = pipe.Exec(ctx)
	fc, err := f1.Claim(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, fc.Sent, "the first chunk's 1 and the final 2, counted once")
	c2, err := s2.Claim(ctx)
	require.NoError(t, err)
	require.Equal(t, ack.StateStarted, c2.State)
	require.Equal(t, "none", state.Val())

	again, err := tr.Start(ctx, ack.Lease{Group: g1, Attempt: 2, Worker: "w", Token: "w/3"}, long, t0)
	require.NoError(t, err)
	require.Equal(t, ack.StateFinished, again.State)
	require.Equal(t, 3, again.Sent)
	var kinds []string
	for _, key := range tr.StreamKeys() {
		msgs, err := rdb.XRange(ctx, key, "-", "+").Result()
		require.NoError(t, err)
		for _, m := range msgs {
			kinds = append(kinds, m.Values["t"].(string)+" "+m.Values["g"].(string))
		}
	}
	require.ElementsMatch(t, []string{"start 3", "finish 3", "start 4", "finish 3"}, kinds,
		"one start per group and one finish, plus the finish the retry's start sends again")
}
