package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/ack"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/scheduler"
	"github.com/chime-dev/chime/store"
)

// The tracker keeps a batch while acks keep coming and records it once a
// read finds nothing new, or TrackLingerMax after its first read. Checked,
// on a fake clock: groups finished while the tracker lingers are not
// recorded among them; the batch is recorded, all of it, at the first
// linger that finds nothing; a steady stream of acks is recorded at
// TrackLingerMax, and what comes after goes in the next batch.
func TestTrackerKeepsABatchWhileAcksKeepComing(t *testing.T) {
	b, o := fired(t)
	ctx := context.Background()
	const linger, most = 250 * time.Millisecond, 2 * time.Second
	s := scheduler.New(scheduler.Config{AckTimeout: time.Minute, QueueTimeout: time.Minute, TrackLinger: linger, TrackLingerMax: most},
		b.env.DB, b.env.Redis, b.index, queue.NewEnqueuer(asynq.NewClientFromRedisClient(b.env.Redis), b.env.Queue),
		ack.NewReader(ack.NewTracker(b.env.Redis, b.env.Prefix)), b.clock, b.env.Log)
	var runs []store.GroupRun
	require.NoError(t, b.env.DB.Where("occurrence_id = ?", o.ID).Order("group_no").Find(&runs).Error)
	require.GreaterOrEqual(t, len(runs), 6)
	tr := ack.NewTracker(b.env.Redis, b.env.Prefix)
	finish := func(g int) {
		t.Helper()
		l := ack.Lease{Group: ack.Group{Occurrence: o.ID, Group: g}, Attempt: 1, Worker: "w", Token: "tok"}
		_, err := tr.Start(ctx, l, time.Minute, b.clock.Now())
		require.NoError(t, err)
		_, err = tr.Finish(ctx, l, ack.StateFinished, ack.Final{Sent: 1}, b.clock.Now())
		require.NoError(t, err)
	}
	finished := func() int {
		t.Helper()
		var n int64
		require.NoError(t, b.env.DB.Model(&store.GroupRun{}).Where("occurrence_id = ? AND state = ?", o.ID, store.RunFinished).Count(&n).Error)
		return int(n)
	}
	track := func() chan error {
		done := make(chan error, 1)
		go func() { done <- s.Track(ctx, time.Second) }()
		return done
	}
	// lingering waits until Track waits on the clock.
	lingering := func() {
		t.Helper()
		testenv.WaitUntil(t, 10*time.Second, "the tracker to linger", func() bool { return b.clock.Waiters() > 0 })
	}

	finish(runs[0].GroupNo)
	done := track()
	lingering()
	finish(runs[1].GroupNo)
	b.clock.Advance(linger)
	lingering()
	require.Zero(t, finished(), "nothing recorded while acks keep coming")
	b.clock.Advance(linger) // a read that finds nothing
	require.NoError(t, <-done)
	require.Equal(t, 2, finished(), "both groups, in one batch")

	// A steady stream: an ack at every linger (the finish ack again of a
	// group already done, as a later copy of its task sends it).
	poke := func() {
		t.Helper()
		c, err := tr.Start(ctx, ack.Lease{Group: ack.Group{Occurrence: o.ID, Group: runs[0].GroupNo}, Attempt: 2, Worker: "w2", Token: "again"},
			time.Minute, b.clock.Now())
		require.NoError(t, err)
		require.True(t, c.Done())
	}
	finish(runs[2].GroupNo)
	done = track()
	for i := range int(most/linger) - 1 {
		lingering()
		poke()
		b.clock.Advance(linger)
		lingering()
		select {
		case err := <-done:
			t.Fatalf("recorded after %d lingers of %d: %v", i+1, most/linger, err)
		default:
		}
		require.Equal(t, 2, finished(), "held while acks keep coming")
	}
	poke()
	b.clock.Advance(linger)
	require.NoError(t, <-done, "recorded at TrackLingerMax although acks keep coming")
	require.Equal(t, 3, finished())

	// What came after is the next batch's.
	finish(runs[3].GroupNo)
	done = track()
	lingering()
	b.clock.Advance(linger)
	require.NoError(t, <-done)
	require.Equal(t, 4, finished())
}
