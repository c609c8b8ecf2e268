package ack_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/ack"
	"github.com/chime-dev/chime/internal/testenv"
)

var (
	g1 = ack.Group{Occurrence: 7001, Group: 3}
	g2 = ack.Group{Occurrence: 7001, Group: 4}
	t0 = time.Date(2026, 3, 1, 8, 0, 0, 123_000_000, time.UTC)
)

const long = time.Minute

func newTracker(t *testing.T) (*testenv.Env, *ack.Tracker) {
	t.Helper()
	env := testenv.NewRedis(t)
	return env, ack.NewTracker(env.Redis, env.Prefix)
}

// stream returns the acks on the streams, by shard and oldest first within
// a shard, without touching the consumer group.
func stream(t *testing.T, env *testenv.Env, tr *ack.Tracker) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, key := range tr.StreamKeys() {
		msgs, err := env.Redis.XRange(context.Background(), key, "-", "+").Result()
		require.NoError(t, err)
		for _, m := range msgs {
			out = append(out, m.Values)
		}
	}
	return out
}

// streamLen is the number of entries on all the ack streams.
func streamLen(t *testing.T, env *testenv.Env, tr *ack.Tracker) int64 {
	t.Helper()
	var n int64
	for _, key := range tr.StreamKeys() {
		n += env.Redis.XLen(context.Background(), key).Val()
	}
	return n
}

func types(acks []map[string]any) []string {
	out := make([]string, len(acks))
	for i, a := range acks {
		out[i], _ = a["t"].(string)
	}
	return out
}

func TestStartTakesLease(t *testing.T) {
	env, tr := newTracker(t)
	ctx := context.Background()

	c, err := tr.Start(ctx, ack.Lease{Group: g1, Attempt: 1, Worker: "w1", Token: "tok-a"}, long, t0)
	require.NoError(t, err)
	require.Equal(t, ack.Claim{State: ack.StateStarted}, c)
	require.False(t, c.Done())

	_, err = tr.Start(ctx, ack.Lease{Group: g1, Attempt: 2, Worker: "w2", Token: "tok-b"}, long, t0)
	require.ErrorIs(t, err, ack.ErrHeld)
	// Another group of the same occurrence is a lease of its own.
	_, err = tr.Start(ctx, ack.Lease{Group: g2, Attempt: 1, Worker: "w2", Token: "tok-b"}, long, t0)
	require.NoError(t, err)

	acks := stream(t, env, tr)
	require.Equal(t, []string{ack.TypeStart, ack.TypeStart}, types(acks), "a refused start sends no ack")
	require.Equal(t, map[string]any{"t": "start", "o": "7001", "g": "3", "a": "1", "w": "w1", "at": "1772352000123"}, acks[0])
	require.Equal(t, "4", acks[1]["g"])
}

func TestCheckpoint(t *testing.T) {
	_, tr := newTracker(t)
	ctx := context.Background()
	_, err := tr.Start(ctx, ack.Lease{Group: g1, Attempt: 1, Worker: "w1", Token: "tok-a"}, long, t0)
	require.NoError(t, err)

	require.ErrorIs(t, tr.Checkpoint(ctx, ack.Lease{Group: g1, Token: "tok-b"}, "u09", 10, 0, 0, ack.Skips{}, long), ack.ErrLeaseLost)
	require.ErrorIs(t, tr.Checkpoint(ctx, ack.Lease{Group: g2, Token: "tok-a"}, "u09", 10, 0, 0, ack.Skips{}, long), ack.ErrLeaseLost, "no lease on g2")
	require.NoError(t, tr.Checkpoint(ctx, ack.Lease{Group: g1, Token: "tok-a"}, "u09", 9, 1, 0, ack.Skips{}, long))
	require.NoError(t, tr.Checkpoint(ctx, ack.Lease{Group: g1, Token: "tok-a"}, "u19", 8, 2, 0, ack.Skips{}, long))
	require.NoError(t, tr.Checkpoint(ctx, ack.Lease{Group: g1, Token: "tok-a"}, "u29", 6, 1, 3, ack.Skips{}, long))

	// The wrong-token checkpoint counted nothing: the totals are the sums of
	// the accepted ones.
	c, err := tr.Finish(ctx, ack.Lease{Group: g1, Attempt: 1, Worker: "w1", Token: "tok-a"}, ack.StateFinished, ack.Final{Expired: 1}, t0)
	require.NoError(t, err)
	require.Equal(t, ack.Claim{State: ack.StateFinished, Sent: 23, Failed: 4, Expired: 4}, c)
}

func TestLeaseExpiryResumesAtCheckpoint(t *testing.T) {
	env, tr := newTracker(t)
	ctx := context.Background()
	const lease = 200 * time.Millisecond

	_, err := tr.Start(ctx, ack.Lease{Group: g1, Attempt: 1, Worker: "w1", Token: "tok-a"}, lease, t0)
	require.NoError(t, err)
	require.NoError(t, tr.Checkpoint(ctx, ack.Lease{Group: g1, Token: "tok-a"}, "u05", 5, 1, 0, ack.Skips{}, lease))
	_, err = tr.Start(ctx, ack.Lease{Group: g1, Attempt: 2, Worker: "w2", Token: "tok-b"}, lease, t0)
	require.ErrorIs(t, err, ack.ErrHeld, "the lease has not expired yet")

	// w1 dies: once its lease runs out w2 takes the group over.
	var c ack.Claim
	testenv.WaitUntil(t, 5*time.Second, "the lease to expire", func() bool {
		c, err = tr.Start(ctx, ack.Lease{Group: g1, Attempt: 2, Worker: "w2", Token: "tok-b"}, long, t0.Add(time.Second))
		if errors.Is(err, ack.ErrHeld) {
			return false
		}
		require.NoError(t, err)
		return true
	})
	require.Equal(t, ack.Claim{State: ack.StateStarted, Checkpoint: "u05", Sent: 5, Failed: 1}, c)

	// w1 comes back: everything it tries is refused and changes nothing.
	require.ErrorIs(t, tr.Checkpoint(ctx, ack.Lease{Group: g1, Token: "tok-a"}, "u10", 5, 0, 0, ack.Skips{}, lease), ack.ErrLeaseLost)
	_, err = tr.Finish(ctx, ack.Lease{Group: g1, Attempt: 1, Worker: "w1", Token: "tok-a"}, ack.StateFinished, ack.Final{Expired: 0}, t0)
	require.ErrorIs(t, err, ack.ErrLeaseLost)
	require.ErrorIs(t, tr.Release(ctx, ack.Lease{Group: g1, Attempt: 1, Worker: "w1", Token: "tok-a"}, t0), ack.ErrLeaseLost)

	require.NoError(t, tr.Checkpoint(ctx, ack.Lease{Group: g1, Token: "tok-b"}, "u10", 5, 0, 0, ack.Skips{}, long))
	c, err = tr.Finish(ctx, ack.Lease{Group: g1, Attempt: 2, Worker: "w2", Token: "tok-b"}, ack.StateFinished, ack.Final{Expired: 0}, t0)
	require.NoError(t, err)
	require.Equal(t, ack.Claim{State: ack.StateFinished, Sent: 10, Failed: 1}, c)
	require.Equal(t, []string{"start", "start", "finish"}, types(stream(t, env, tr)))
}

func TestFinish(t *testing.T) {
	for _, state := range []string{ack.StateFinished, ack.StateExpired} {
		t.Run(state, func(t *testing.T) {
			env, tr := newTracker(t)
			ctx := context.Background()
			_, err := tr.Start(ctx, ack.Lease{Group: g1, Attempt: 2, Worker: "w1", Token: "tok-a"}, long, t0)
			require.NoError(t, err)
			require.NoError(t, tr.Checkpoint(ctx, ack.Lease{Group: g1, Token: "tok-a"}, "u1", 40, 2, 0, ack.Skips{Preference: 1, Quiet: 2, Capped: 3}, long))

			_, err = tr.Finish(ctx, ack.Lease{Group: g1, Attempt: 2, Worker: "w1", Token: "tok-b"}, state, ack.Final{Expired: 0}, t0)
			require.ErrorIs(t, err, ack.ErrLeaseLost)
			c, err := tr.Finish(ctx, ack.Lease{Group: g1, Attempt: 2, Worker: "w1", Token: "tok-a"}, state,
				ack.Final{LastUser: "u9", Sent: 5, Failed: 1, Expired: 7, Skips: ack.Skips{Preference: 4, Capped: 1}}, t0.Add(time.Second))
			require.NoError(t, err)
			want := ack.Claim{State: state, Sent: 45, Failed: 3, Expired: 7}
			require.Equal(t, want, c)
			require.True(t, c.Done())

			// The lease is gone: its holder can no longer checkpoint.
			require.ErrorIs(t, tr.Checkpoint(ctx, ack.Lease{Group: g1, Token: "tok-a"}, "u2", 1, 0, 0, ack.Skips{}, long), ack.ErrLeaseLost)

			acks := stream(t, env, tr)
			require.Equal(t, []string{"start", "finish"}, types(acks))
			finish := map[string]any{"t": "finish", "o": "7001", "g": "3", "a": "2", "s": state,
				"sent": "45", "failed": "3", "exp": "7", "w": "w1", "at": "1772352001123",
				"skp": "5", "qt": "2", "cap": "4"}
			require.Equal(t, finish, acks[1])

			// A later copy of the task finds the group done, takes no lease and
			// sends the finish ack again (in case the first was lost), with its
			// own attempt and instant.
			for i, tok := range []string{"tok-c", "tok-d"} {
				c, err := tr.Start(ctx, ack.Lease{Group: g1, Attempt: 3 + i, Worker: "w2", Token: tok}, long, t0.Add(time.Minute))
				require.NoError(t, err)
				require.Equal(t, want, c)
				require.True(t, c.Done())
			}
			acks = stream(t, env, tr)
			require.Equal(t, []string{"start", "finish", "finish", "finish"}, types(acks))
			finish["a"], finish["at"] = "3", "1772352060123"
			require.Equal(t, finish, acks[2])
			require.ErrorIs(t, tr.Checkpoint(ctx, ack.Lease{Group: g1, Token: "tok-c"}, "u2", 1, 0, 0, ack.Skips{}, long), ack.ErrLeaseLost, "a done group is not held")
		})
	}
}

func TestRelease(t *testing.T) {
	env, tr := newTracker(t)
	ctx := context.Background()
	_, err := tr.Start(ctx, ack.Lease{Group: g1, Attempt: 1, Worker: "w1", Token: "tok-a"}, long, t0)
	require.NoError(t, err)
	require.NoError(t, tr.Checkpoint(ctx, ack.Lease{Group: g1, Token: "tok-a"}, "u3", 4, 0, 0, ack.Skips{}, long))

	require.ErrorIs(t, tr.Release(ctx, ack.Lease{Group: g1, Attempt: 1, Worker: "w1", Token: "tok-b"}, t0), ack.ErrLeaseLost)
	require.NoError(t, tr.Release(ctx, ack.Lease{Group: g1, Attempt: 1, Worker: "w1", Token: "tok-a"}, t0.Add(time.Second)))
	require.ErrorIs(t, tr.Release(ctx, ack.Lease{Group: g1, Attempt: 1, Worker: "w1", Token: "tok-a"}, t0), ack.ErrLeaseLost, "released twice")

	acks := stream(t, env, tr)
	require.Equal(t, []string{"start", "release"}, types(acks))
	require.Equal(t, map[string]any{"t": "release", "o": "7001", "g": "3", "a": "1", "w": "w1", "at": "1772352001123"}, acks[1])

	// The next attempt does not wait for the (minute-long) lease and resumes.
	c, err := tr.Start(ctx, ack.Lease{Group: g1, Attempt: 2, Worker: "w2", Token: "tok-c"}, long, t0)
	require.NoError(t, err)
	require.Equal(t, ack.Claim{State: ack.StateStarted, Checkpoint: "u3", Sent: 4}, c)
	require.ErrorIs(t, tr.Checkpoint(ctx, ack.Lease{Group: g1, Token: "tok-a"}, "u9", 1, 0, 0, ack.Skips{}, long), ack.ErrLeaseLost)
}

// readSome reads until the reader returns acks (a fresh reader first creates
// its consumer group and drains what is pending).
func readSome(t *testing.T, r *ack.Reader) []ack.Ack {
	t.Helper()
	var got []ack.Ack
	testenv.WaitUntil(t, 5*time.Second, "acks to read", func() bool {
		acks, err := r.Read(context.Background(), 100, 10*time.Millisecond)
		require.NoError(t, err)
		got = acks
		return len(acks) > 0
	})
	return got
}

func TestReader(t *testing.T) {
	_, tr := newTracker(t)
	ctx := context.Background()
	r := ack.NewReader(tr)
	// Nothing on the stream yet (not even the stream itself).
	acks, err := r.Read(ctx, 100, 10*time.Millisecond)
	require.NoError(t, err)
	require.Empty(t, acks)

	_, err = tr.Start(ctx, ack.Lease{Group: g1, Attempt: 1, Worker: "w1", Token: "tok-a"}, long, t0)
	require.NoError(t, err)
	_, err = tr.Start(ctx, ack.Lease{Group: g2, Attempt: 1, Worker: "w2", Token: "tok-b"}, long, t0.Add(1*time.Millisecond))
	require.NoError(t, err)
	require.NoError(t, tr.Checkpoint(ctx, ack.Lease{Group: g1, Token: "tok-a"}, "u", 10, 2, 0, ack.Skips{}, long))
	_, err = tr.Finish(ctx, ack.Lease{Group: g1, Attempt: 1, Worker: "w1", Token: "tok-a"}, ack.StateFinished, ack.Final{Expired: 0}, t0.Add(2*time.Millisecond))
	require.NoError(t, err)
	require.NoError(t, tr.Release(ctx, ack.Lease{Group: g2, Attempt: 1, Worker: "w2", Token: "tok-b"}, t0.Add(3*time.Millisecond)))

	acks = readSome(t, r)
	require.Len(t, acks, 4)
	for i, a := range acks {
		require.NotEmpty(t, a.ID)
		acks[i].ID = ""
	}
	// g1 and g2 are in shards 10 and 11: each group's acks in order, the
	// shards one after the other.
	require.Equal(t, []ack.Ack{
		{Type: ack.TypeStart, Group: g1, Attempt: 1, Worker: "w1", At: t0, Shard: 10},
		{Type: ack.TypeFinish, Group: g1, Attempt: 1, Worker: "w1", State: ack.StateFinished, Sent: 10, Failed: 2, At: t0.Add(2 * time.Millisecond), Shard: 10},
		{Type: ack.TypeStart, Group: g2, Attempt: 1, Worker: "w2", At: t0.Add(time.Millisecond), Shard: 11},
		{Type: ack.TypeRelease, Group: g2, Attempt: 1, Worker: "w2", At: t0.Add(3 * time.Millisecond), Shard: 11},
	}, acks)
}

func TestReaderPendingAndDone(t *testing.T) {
	env, tr := newTracker(t)
	ctx := context.Background()
	start := func(g ack.Group, tok string) {
		t.Helper()
		_, err := tr.Start(ctx, ack.Lease{Group: g, Attempt: 1, Worker: "w", Token: tok}, long, t0)
		require.NoError(t, err)
	}
	start(g1, "a")
	start(g2, "b")
	first := ack.NewReader(tr)
	batch := readSome(t, first)
	require.Len(t, batch, 2)
	require.Equal(t, []ack.Group{g1, g2}, []ack.Group{batch[0].Group, batch[1].Group})

	// Nothing new: the batch read stays pending, not delivered twice.
	again, err := first.Read(ctx, 100, 10*time.Millisecond)
	require.NoError(t, err)
	require.Empty(t, again)

	// The leader dies before Done; the next leader gets the same entries.
	second := ack.NewReader(tr)
	pending := readSome(t, second)
	require.Equal(t, batch, pending)
	require.NoError(t, second.Done(ctx, pending[:1]))
	require.EqualValues(t, 1, streamLen(t, env, tr), "done entries are deleted")

	// Still pending: the one not done.
	third := ack.NewReader(tr)
	pending = readSome(t, third)
	require.Equal(t, batch[1:], pending)
	require.NoError(t, third.Done(ctx, pending))
	require.NoError(t, third.Done(ctx, nil))
	require.Zero(t, streamLen(t, env, tr))

	// New acks after the pending ones are read once.
	g3 := ack.Group{Occurrence: 7002, Group: 0}
	start(g3, "c")
	fresh := readSome(t, third)
	require.Len(t, fresh, 1)
	require.Equal(t, g3, fresh[0].Group)

	// Handling failed: Rewind re-reads what is still pending.
	third.Rewind()
	again = readSome(t, third)
	require.Equal(t, fresh, again)
	require.NoError(t, third.Done(ctx, again))
	third.Rewind()
	none, err := third.Read(ctx, 100, 10*time.Millisecond)
	require.NoError(t, err)
	require.Empty(t, none)
	none, err = third.Read(ctx, 100, 10*time.Millisecond)
	require.NoError(t, err)
	require.Empty(t, none)
}

func TestReaderAfterStreamLoss(t *testing.T) {
	env, tr := newTracker(t)
	ctx := context.Background()
	r := ack.NewReader(tr)
	_, err := tr.Start(ctx, ack.Lease{Group: g1, Attempt: 1, Worker: "w", Token: "a"}, long, t0)
	require.NoError(t, err)
	got := readSome(t, r)
	require.Len(t, got, 1)
	require.NoError(t, r.Done(ctx, got))

	// Redis loses the stream and its consumer group; acks written after that
	// are still read.
	require.NoError(t, env.Redis.Del(ctx, tr.StreamKeys()...).Err())
	_, err = tr.Start(ctx, ack.Lease{Group: g2, Attempt: 1, Worker: "w", Token: "b"}, long, t0)
	require.NoError(t, err)
	got = readSome(t, r)
	require.Len(t, got, 1)
	require.Equal(t, g2, got[0].Group)
}

// Every ack script on a 3-master Redis Cluster: each touches keys of one
// slot (a CROSSSLOT error would fail it), the groups of one occurrence
// spread over the shards, and the reader reads every shard's stream.
func TestTrackerOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	url := testenv.RedisCluster(t, 3)
	rdb, err := chime.OpenRedis(context.Background(), url)
	require.NoError(t, err)
	defer rdb.Close()
	tr := ack.NewTracker(rdb, "chime-test:"+testenv.ID()+":")
	ctx := context.Background()

	const groups = 40
	for g := range groups {
		grp := ack.Group{Occurrence: 8001, Group: g}
		_, err := tr.Start(ctx, ack.Lease{Group: grp, Attempt: 1, Worker: "w1", Token: "tok"}, long, t0)
		require.NoError(t, err)
		require.NoError(t, tr.Renew(ctx, ack.Lease{Group: grp, Token: "tok"}, long))
		require.NoError(t, tr.Checkpoint(ctx, ack.Lease{Group: grp, Token: "tok"}, "u1", 1, 0, 0, ack.Skips{}, long))
		if g%2 == 0 {
			require.NoError(t, tr.Release(ctx, ack.Lease{Group: grp, Attempt: 1, Worker: "w1", Token: "tok"}, t0))
			_, err = tr.Start(ctx, ack.Lease{Group: grp, Attempt: 2, Worker: "w2", Token: "tok2"}, long, t0)
			require.NoError(t, err)
			_, err = tr.Finish(ctx, ack.Lease{Group: grp, Attempt: 2, Worker: "w2", Token: "tok2"}, ack.StateFinished, ack.Final{LastUser: "u2", Sent: 1}, t0)
		} else {
			_, err = tr.Finish(ctx, ack.Lease{Group: grp, Attempt: 1, Worker: "w1", Token: "tok"}, ack.StateFinished, ack.Final{LastUser: "u2", Sent: 1}, t0)
		}
		require.NoError(t, err)
	}

	r := ack.NewReader(tr)
	var got []ack.Ack
	shards := map[int]bool{}
	testenv.WaitUntil(t, 10*time.Second, "every ack read", func() bool {
		acks, err := r.Read(ctx, 1000, 10*time.Millisecond)
		require.NoError(t, err)
		got = append(got, acks...)
		// start and finish per group; release and a second start for half
		return len(got) == groups*2+groups/2*2
	})
	for _, a := range got {
		shards[a.Shard] = true
	}
	require.Len(t, shards, ack.DefaultShards, "40 consecutive groups use every shard")
	require.NoError(t, r.Done(ctx, got))
	for _, key := range tr.StreamKeys() {
		require.Zero(t, rdb.XLen(ctx, key).Val(), key)
	}
}

// A batch read again after a failure (Rewind) in several reads. Injected:
// three acks of one group delivered to the consumer group and not done, as
// when recording their batch failed. Checked: reading the pending entries
// one at a time goes on from the last one read, so each comes once and in
// stream order (a copy of an early ack after a later one would make the
// tracker take it for the group's last word), and then new entries are
// read.
func TestReaderGoesOnThroughPendingEntries(t *testing.T) {
	_, tr := newTracker(t)
	ctx := context.Background()
	a := ack.Lease{Group: g1, Attempt: 1, Worker: "w1", Token: "tok-a"}
	_, err := tr.Start(ctx, a, long, t0)
	require.NoError(t, err)
	require.NoError(t, tr.Release(ctx, a, t0))
	_, err = tr.Start(ctx, ack.Lease{Group: g1, Attempt: 2, Worker: "w2", Token: "tok-b"}, long, t0)
	require.NoError(t, err)
	r := ack.NewReader(tr)
	var batch []ack.Ack
	for range 3 { // creating the consumer groups, finding nothing pending, then the new entries
		acks, err := r.Read(ctx, 100, -1)
		require.NoError(t, err)
		batch = append(batch, acks...)
	}
	require.Len(t, batch, 3)
	r.Rewind() // recording the batch failed

	var got []string
	for range 6 {
		// One entry a shard per read.
		acks, err := r.Read(ctx, int64(len(tr.StreamKeys())), -1)
		require.NoError(t, err)
		for _, x := range acks {
			got = append(got, fmt.Sprintf("%s:%d", x.Type, x.Attempt))
		}
	}
	require.Equal(t, []string{"start:1", "release:1", "start:2"}, got, "each pending entry once, in order")

	require.NoError(t, r.Done(ctx, batch))
	_, err = tr.Start(ctx, ack.Lease{Group: g2, Attempt: 1, Worker: "w1", Token: "tok-c"}, long, t0)
	require.NoError(t, err)
	acks, err := r.Read(ctx, 100, -1)
	require.NoError(t, err)
	require.Len(t, acks, 1, "then the new entries")
	require.Equal(t, g2, acks[0].Group)
}
