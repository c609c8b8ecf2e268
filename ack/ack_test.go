package ack_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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

// stream returns the acks on the stream, oldest first, without touching the
// consumer group.
func stream(t *testing.T, env *testenv.Env, tr *ack.Tracker) []map[string]any {
	t.Helper()
	msgs, err := env.Redis.XRange(context.Background(), tr.StreamKey(), "-", "+").Result()
	require.NoError(t, err)
	out := make([]map[string]any, len(msgs))
	for i, m := range msgs {
		out[i] = m.Values
	}
	return out
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

	c, err := tr.Start(ctx, g1, 1, "w1", "tok-a", long, t0)
	require.NoError(t, err)
	require.Equal(t, ack.Claim{State: ack.StateStarted}, c)
	require.False(t, c.Done())

	_, err = tr.Start(ctx, g1, 2, "w2", "tok-b", long, t0)
	require.ErrorIs(t, err, ack.ErrHeld)
	// Another group of the same occurrence is a lease of its own.
	_, err = tr.Start(ctx, g2, 1, "w2", "tok-b", long, t0)
	require.NoError(t, err)

	acks := stream(t, env, tr)
	require.Equal(t, []string{ack.TypeStart, ack.TypeStart}, types(acks), "a refused start sends no ack")
	require.Equal(t, map[string]any{"t": "start", "o": "7001", "g": "3", "a": "1", "w": "w1", "at": "1772352000123"}, acks[0])
	require.Equal(t, "4", acks[1]["g"])
}

func TestCheckpoint(t *testing.T) {
	_, tr := newTracker(t)
	ctx := context.Background()
	_, err := tr.Start(ctx, g1, 1, "w1", "tok-a", long, t0)
	require.NoError(t, err)

	require.ErrorIs(t, tr.Checkpoint(ctx, g1, "tok-b", "u09", 10, 0, 0, long), ack.ErrLeaseLost)
	require.ErrorIs(t, tr.Checkpoint(ctx, g2, "tok-a", "u09", 10, 0, 0, long), ack.ErrLeaseLost, "no lease on g2")
	require.NoError(t, tr.Checkpoint(ctx, g1, "tok-a", "u09", 9, 1, 0, long))
	require.NoError(t, tr.Checkpoint(ctx, g1, "tok-a", "u19", 8, 2, 0, long))
	require.NoError(t, tr.Checkpoint(ctx, g1, "tok-a", "u29", 6, 1, 3, long))

	// The wrong-token checkpoint counted nothing: the totals are the sums of
	// the accepted ones.
	c, err := tr.Finish(ctx, g1, 1, "w1", "tok-a", ack.StateFinished, ack.Final{Expired: 1}, t0)
	require.NoError(t, err)
	require.Equal(t, ack.Claim{State: ack.StateFinished, Sent: 23, Failed: 4, Expired: 4}, c)
}

func TestLeaseExpiryResumesAtCheckpoint(t *testing.T) {
	env, tr := newTracker(t)
	ctx := context.Background()
	const lease = 200 * time.Millisecond

	_, err := tr.Start(ctx, g1, 1, "w1", "tok-a", lease, t0)
	require.NoError(t, err)
	require.NoError(t, tr.Checkpoint(ctx, g1, "tok-a", "u05", 5, 1, 0, lease))
	_, err = tr.Start(ctx, g1, 2, "w2", "tok-b", lease, t0)
	require.ErrorIs(t, err, ack.ErrHeld, "the lease has not expired yet")

	// w1 dies: once its lease runs out w2 takes the group over.
	var c ack.Claim
	testenv.WaitUntil(t, 5*time.Second, "the lease to expire", func() bool {
		c, err = tr.Start(ctx, g1, 2, "w2", "tok-b", long, t0.Add(time.Second))
		if errors.Is(err, ack.ErrHeld) {
			return false
		}
		require.NoError(t, err)
		return true
	})
	require.Equal(t, ack.Claim{State: ack.StateStarted, Checkpoint: "u05", Sent: 5, Failed: 1}, c)

	// w1 comes back: everything it tries is refused and changes nothing.
	require.ErrorIs(t, tr.Checkpoint(ctx, g1, "tok-a", "u10", 5, 0, 0, lease), ack.ErrLeaseLost)
	_, err = tr.Finish(ctx, g1, 1, "w1", "tok-a", ack.StateFinished, ack.Final{Expired: 0}, t0)
	require.ErrorIs(t, err, ack.ErrLeaseLost)
	require.ErrorIs(t, tr.Release(ctx, g1, 1, "w1", "tok-a", t0), ack.ErrLeaseLost)

	require.NoError(t, tr.Checkpoint(ctx, g1, "tok-b", "u10", 5, 0, 0, long))
	c, err = tr.Finish(ctx, g1, 2, "w2", "tok-b", ack.StateFinished, ack.Final{Expired: 0}, t0)
	require.NoError(t, err)
	require.Equal(t, ack.Claim{State: ack.StateFinished, Sent: 10, Failed: 1}, c)
	require.Equal(t, []string{"start", "start", "finish"}, types(stream(t, env, tr)))
}

func TestFinish(t *testing.T) {
	for _, state := range []string{ack.StateFinished, ack.StateExpired} {
		t.Run(state, func(t *testing.T) {
			env, tr := newTracker(t)
			ctx := context.Background()
			_, err := tr.Start(ctx, g1, 2, "w1", "tok-a", long, t0)
			require.NoError(t, err)
			require.NoError(t, tr.Checkpoint(ctx, g1, "tok-a", "u1", 40, 2, 0, long))

			_, err = tr.Finish(ctx, g1, 2, "w1", "tok-b", state, ack.Final{Expired: 0}, t0)
			require.ErrorIs(t, err, ack.ErrLeaseLost)
			c, err := tr.Finish(ctx, g1, 2, "w1", "tok-a", state, ack.Final{Expired: 7}, t0.Add(time.Second))
			require.NoError(t, err)
			want := ack.Claim{State: state, Sent: 40, Failed: 2, Expired: 7}
			require.Equal(t, want, c)
			require.True(t, c.Done())

			// The lease is gone: its holder can no longer checkpoint.
			require.ErrorIs(t, tr.Checkpoint(ctx, g1, "tok-a", "u2", 1, 0, 0, long), ack.ErrLeaseLost)

			acks := stream(t, env, tr)
			require.Equal(t, []string{"start", "finish"}, types(acks))
			finish := map[string]any{"t": "finish", "o": "7001", "g": "3", "a": "2", "s": state,
				"sent": "40", "failed": "2", "exp": "7", "w": "w1", "at": "1772352001123"}
			require.Equal(t, finish, acks[1])

			// A later copy of the task finds the group done, takes no lease and
			// sends the finish ack again (in case the first was lost), with its
			// own attempt and instant.
			for i, tok := range []string{"tok-c", "tok-d"} {
				c, err := tr.Start(ctx, g1, 3+i, "w2", tok, long, t0.Add(time.Minute))
				require.NoError(t, err)
				require.Equal(t, want, c)
				require.True(t, c.Done())
			}
			acks = stream(t, env, tr)
			require.Equal(t, []string{"start", "finish", "finish", "finish"}, types(acks))
			finish["a"], finish["at"] = "3", "1772352060123"
			require.Equal(t, finish, acks[2])
			require.ErrorIs(t, tr.Checkpoint(ctx, g1, "tok-c", "u2", 1, 0, 0, long), ack.ErrLeaseLost, "a done group is not held")
		})
	}
}

func TestRelease(t *testing.T) {
	env, tr := newTracker(t)
	ctx := context.Background()
	_, err := tr.Start(ctx, g1, 1, "w1", "tok-a", long, t0)
	require.NoError(t, err)
	require.NoError(t, tr.Checkpoint(ctx, g1, "tok-a", "u3", 4, 0, 0, long))

	require.ErrorIs(t, tr.Release(ctx, g1, 1, "w1", "tok-b", t0), ack.ErrLeaseLost)
	require.NoError(t, tr.Release(ctx, g1, 1, "w1", "tok-a", t0.Add(time.Second)))
	require.ErrorIs(t, tr.Release(ctx, g1, 1, "w1", "tok-a", t0), ack.ErrLeaseLost, "released twice")

	acks := stream(t, env, tr)
	require.Equal(t, []string{"start", "release"}, types(acks))
	require.Equal(t, map[string]any{"t": "release", "o": "7001", "g": "3", "a": "1", "w": "w1", "at": "1772352001123"}, acks[1])

	// The next attempt does not wait for the (minute-long) lease and resumes.
	c, err := tr.Start(ctx, g1, 2, "w2", "tok-c", long, t0)
	require.NoError(t, err)
	require.Equal(t, ack.Claim{State: ack.StateStarted, Checkpoint: "u3", Sent: 4}, c)
	require.ErrorIs(t, tr.Checkpoint(ctx, g1, "tok-a", "u9", 1, 0, 0, long), ack.ErrLeaseLost)
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

	_, err = tr.Start(ctx, g1, 1, "w1", "tok-a", long, t0)
	require.NoError(t, err)
	_, err = tr.Start(ctx, g2, 1, "w2", "tok-b", long, t0.Add(1*time.Millisecond))
	require.NoError(t, err)
	require.NoError(t, tr.Checkpoint(ctx, g1, "tok-a", "u", 10, 2, 0, long))
	_, err = tr.Finish(ctx, g1, 1, "w1", "tok-a", ack.StateFinished, ack.Final{Expired: 0}, t0.Add(2*time.Millisecond))
	require.NoError(t, err)
	require.NoError(t, tr.Release(ctx, g2, 1, "w2", "tok-b", t0.Add(3*time.Millisecond)))

	acks = readSome(t, r)
	require.Len(t, acks, 4)
	for i, a := range acks {
		require.NotEmpty(t, a.ID)
		acks[i].ID = ""
	}
	require.Equal(t, []ack.Ack{
		{Type: ack.TypeStart, Group: g1, Attempt: 1, Worker: "w1", At: t0},
		{Type: ack.TypeStart, Group: g2, Attempt: 1, Worker: "w2", At: t0.Add(time.Millisecond)},
		{Type: ack.TypeFinish, Group: g1, Attempt: 1, Worker: "w1", State: ack.StateFinished, Sent: 10, Failed: 2, At: t0.Add(2 * time.Millisecond)},
		{Type: ack.TypeRelease, Group: g2, Attempt: 1, Worker: "w2", At: t0.Add(3 * time.Millisecond)},
	}, acks)
}

func TestReaderPendingAndDone(t *testing.T) {
	env, tr := newTracker(t)
	ctx := context.Background()
	start := func(g ack.Group, tok string) {
		t.Helper()
		_, err := tr.Start(ctx, g, 1, "w", tok, long, t0)
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
	require.EqualValues(t, 1, env.Redis.XLen(ctx, tr.StreamKey()).Val(), "done entries are deleted")

	// Still pending: the one not done.
	third := ack.NewReader(tr)
	pending = readSome(t, third)
	require.Equal(t, batch[1:], pending)
	require.NoError(t, third.Done(ctx, pending))
	require.NoError(t, third.Done(ctx, nil))
	require.Zero(t, env.Redis.XLen(ctx, tr.StreamKey()).Val())

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
	_, err := tr.Start(ctx, g1, 1, "w", "a", long, t0)
	require.NoError(t, err)
	got := readSome(t, r)
	require.Len(t, got, 1)
	require.NoError(t, r.Done(ctx, got))

	// Redis loses the stream and its consumer group; acks written after that
	// are still read.
	require.NoError(t, env.Redis.Del(ctx, tr.StreamKey()).Err())
	_, err = tr.Start(ctx, g2, 1, "w", "b", long, t0)
	require.NoError(t, err)
	got = readSome(t, r)
	require.Len(t, got, 1)
	require.Equal(t, g2, got[0].Group)
}
