package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/scheduler"
	"github.com/chime-dev/chime/store"
)

// The firer's pass within FireLead of an instant loads and checks its
// occurrences ahead but claims and enqueues nothing before the instant; a
// reminder edited while the pass waits for the instant fires as edited.
func TestFireAheadClaimsAtTheInstant(t *testing.T) {
	fireAt := time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC) // 09:00 in Jakarta
	b := setup(t, fireAt.Add(-10*time.Second))
	rid, _ := b.reminder(t, "09:00", "Asia/Jakarta", 40, fireAt.Add(-time.Hour))
	ctx := context.Background()
	require.NoError(t, b.s.Plan(ctx))
	require.NoError(t, b.s.FirePass(ctx), "the pass 10 s ahead prepares")
	require.Equal(t, store.OccScheduled, b.occurrences(t)[0].State)

	// Within FireLead of the instant: the pass waits on the clock for it.
	b.clock.Set(fireAt.Add(-scheduler.DefaultFireLead / 2))
	waiting := b.clock.Waiters()
	done := make(chan error, 1)
	go func() { done <- b.s.FirePass(ctx) }()
	testenv.WaitUntil(t, 10*time.Second, "the pass waits for the instant", func() bool {
		return b.clock.Waiters() > waiting
	})
	occ := b.occurrences(t)[0]
	require.Equal(t, store.OccScheduled, occ.State, "nothing claimed before the instant")
	_, err := b.insp.ListPendingTasks(b.env.Queue)
	require.ErrorContains(t, err, "queue not found", "nothing enqueued before the instant")

	// An edit while the pass waits: the claim at the instant sees it.
	require.NoError(t, b.env.DB.Model(&store.Reminder{}).Where("id = ?", rid).
		Updates(map[string]any{"body": "edited", "updated_at": fireAt.Add(-time.Second)}).Error)
	b.clock.Set(fireAt)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the pass did not fire at the instant")
	}
	occ = b.occurrences(t)[0]
	require.Equal(t, store.OccFiring, occ.State)
	require.True(t, occ.FiredAt != nil && !occ.FiredAt.Before(fireAt), "claimed at the instant, not before: %v", occ.FiredAt)
	list, err := b.insp.ListPendingTasks(b.env.Queue)
	require.NoError(t, err)
	require.NotEmpty(t, list)
	for _, task := range list {
		tk, err := queue.Decode(task.Type, task.Payload)
		require.NoError(t, err)
		for _, p := range tk.Parts {
			require.Equal(t, "edited", p.Message.Body, "the edit made while the pass waited is sent")
		}
	}
}
