package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/ack"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/sender"
)

// A task that carries several groups is delivered group by group, each
// with its own lease, checkpoints and acks. Injected: another worker holds
// group 1, and the channel fails group 2's second chunk. Checked: the task
// fails as a whole (asynq retries it) after group 0 finished, group 2
// checkpointed its first chunk and released, and group 1 was left alone;
// the retry, once group 1 is free, skips group 0, delivers group 1 and
// resumes group 2 after its checkpoint: every user of the three groups
// once. The retry is the task in the form before shared messages
// (queue.LegacyTaskType), which workers still take.
func TestSharedTaskIsAckedAndRetriedGroupByGroup(t *testing.T) {
	f := setup(t, 400)
	ctx := context.Background()
	var parts []queue.Payload
	for _, g := range []int{0, 1, 2} {
		p := f.payload(1)
		p.Group = g
		parts = append(parts, p)
	}
	b, err := queue.Encode(queue.Task{Parts: parts})
	require.NoError(t, err)
	task := asynq.NewTask(queue.TaskType, b)
	// The same task as a coordinator from before shared messages queued
	// it: the retry below takes that form, so both are delivered alike.
	lb, err := json.Marshal(queue.Task{Parts: parts})
	require.NoError(t, err)
	legacy := asynq.NewTask(queue.LegacyTaskType, lb)

	held := ack.Lease{Group: ack.Group{Occurrence: 9001, Group: 1}, Attempt: 1, Worker: "rival", Token: "rival-token"}
	_, err = f.acks.Start(ctx, held, time.Minute, f.clock.Now())
	require.NoError(t, err)
	failed := false
	first2 := firstOf(f, 2)
	rec := recorder{before: func(_ int, b *sender.Batch) (sender.Result, error) {
		// Group 2's first chunk goes through; its second fails once.
		if b.Group == 2 && b.Users[0] != first2 && !failed {
			failed = true
			return sender.Result{}, errors.New("receiver down")
		}
		return sender.Result{}, nil
	}}
	w := f.worker(t, "w1", &rec)
	err = w.ProcessTask(ctx, task)
	require.ErrorContains(t, err, "receiver down")
	require.True(t, failed)
	require.Equal(t, ack.StateFinished, f.claimOf(t, 0).State, "group 0 finished")
	c2 := f.claimOf(t, 2)
	require.False(t, c2.Done(), "group 2 released, not finished")
	require.Equal(t, chunk, c2.Sent, "group 2 checkpointed its first chunk")
	_, users := rec.sent()
	for _, u := range users {
		require.NotEqual(t, 1, grouping.Of(u, groups), "nothing of the held group was sent")
	}

	// The rival lets go; the retry delivers the rest.
	require.NoError(t, f.acks.Release(ctx, held, f.clock.Now()))
	require.NoError(t, w.ProcessTask(ctx, legacy))
	_, users = rec.sent()
	want := map[string]int{}
	for _, u := range f.all {
		if g := grouping.Of(u, groups); g <= 2 {
			want[u] = 1
		}
	}
	got := map[string]int{}
	for _, u := range users {
		got[u]++
	}
	require.Equal(t, want, got, "every user of the three groups once")
	for _, g := range []int{0, 1, 2} {
		require.Equal(t, ack.StateFinished, f.claimOf(t, g).State, "group %d", g)
	}
}

// firstOf returns the first user, in sorted order, of group g.
func firstOf(f *fixture, g int) string {
	first := ""
	for _, u := range f.all {
		if grouping.Of(u, groups) == g && (first == "" || u < first) {
			first = u
		}
	}
	return first
}

// claimOf reads group g's state the way a worker would, and gives the
// group back if that took it.
func (f *fixture) claimOf(t *testing.T, g int) ack.Claim {
	t.Helper()
	l := ack.Lease{Group: ack.Group{Occurrence: 9001, Group: g}, Attempt: 99, Worker: "probe", Token: "probe-token"}
	c, err := f.acks.Start(context.Background(), l, time.Minute, f.clock.Now())
	require.NoError(t, err)
	if !c.Done() {
		require.NoError(t, f.acks.Release(context.Background(), l, f.clock.Now()))
	}
	return c
}
