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

// queuedGroups returns the groups of occurrence occ the pending tasks
// carry, counting repeats, and the number of tasks.
func (b *bundle) queuedGroups(t *testing.T, occ int64) (map[int]int, int) {
	t.Helper()
	list, err := b.insp.ListPendingTasks(b.env.Queue, asynq.PageSize(1000))
	if err != nil {
		return map[int]int{}, 0 // no queue yet: nothing was enqueued
	}
	got := map[int]int{}
	for _, task := range list {
		tk, err := queue.Decode(task.Type, task.Payload)
		require.NoError(t, err)
		for _, p := range tk.Parts {
			if p.Occurrence == occ {
				got[p.Group]++
			}
		}
	}
	return got, len(list)
}

func (b *bundle) runs(t *testing.T, occ int64) []store.GroupRun {
	t.Helper()
	var runs []store.GroupRun
	require.NoError(t, b.env.DB.Where("occurrence_id = ?", occ).Order("slot_at").Find(&runs).Error)
	return runs
}

// A spread send of 8 groups over 8 minutes, on a fake clock. Injected: the
// firer's slot passes at each slot, a reaper pass long after the runs were
// prepared, and a change of leader (a second scheduler on the same MySQL
// and Redis) while two slots pass with no firer running. Checked: the
// instant enqueues nothing early; the slots are evenly spaced, inside the
// validity window and the same when prepared again; each pass enqueues
// exactly the groups whose slot has come, each once; the reaper leaves the
// runs waiting for a slot alone; the new leader enqueues the two overdue
// slots (one task each: only groups of one slot share a task) and none
// already enqueued; the occurrence's slot lateness is measured against the
// slots.
func TestSpreadSendEnqueuesEachGroupAtItsSlot(t *testing.T) {
	const spread = 8 * time.Minute
	fireAt := time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC) // 09:00 in Jakarta
	b := setup(t, fireAt.Add(-10*time.Second))
	rid, _ := b.reminder(t, "09:00", "Asia/Jakarta", 160, fireAt.Add(-time.Hour))
	require.NoError(t, b.env.DB.Model(&store.Reminder{}).Where("id = ?", rid).Update("spread_s", int64(spread/time.Second)).Error)
	ctx := context.Background()
	require.NoError(t, b.s.Plan(ctx))
	o := b.occurrences(t)[0]
	require.Equal(t, fireAt, o.FireAt.UTC())

	_, err := b.s.Prepare(ctx, o)
	require.NoError(t, err)
	runs := b.runs(t, o.ID)
	require.Len(t, runs, 8)
	planned := make([]time.Time, len(runs))
	step := spread / 8
	for i, r := range runs {
		require.NotNil(t, r.SlotAt, "group %d has a slot", r.GroupNo)
		planned[i] = r.SlotAt.UTC()
		require.False(t, planned[i].Before(fireAt), "slot %d before the instant", i)
		require.True(t, planned[i].Before(fireAt.Add(spread)), "slot %d past the spread", i)
		if i > 0 {
			require.InDelta(t, step.Seconds(), planned[i].Sub(planned[i-1]).Seconds(), 0.002, "slots %d and %d evenly spaced", i-1, i)
		}
	}
	_, err = b.s.Prepare(ctx, o)
	require.NoError(t, err)
	for i, r := range b.runs(t, o.ID) {
		require.Equal(t, planned[i], r.SlotAt.UTC(), "slot %d is the same when prepared again", i)
	}

	b.clock.Set(fireAt)
	require.NoError(t, b.s.Fire(ctx, o))
	var got store.Occurrence
	require.NoError(t, b.env.DB.First(&got, o.ID).Error)
	require.Equal(t, store.OccFiring, got.State)
	require.EqualValues(t, spread/time.Second, got.SpreadS)
	queued, _ := b.queuedGroups(t, o.ID)
	require.Empty(t, queued, "nothing goes out at the instant but the slots that have come")

	// The firer passes at each of the first five slots.
	for i := range 5 {
		b.clock.Set(planned[i])
		require.NoError(t, b.s.FireSlots(ctx))
		queued, _ := b.queuedGroups(t, o.ID)
		require.Len(t, queued, i+1, "at slot %d", i)
		for g, n := range queued {
			require.Equal(t, 1, n, "group %d enqueued once", g)
		}
		require.Equal(t, 1, queued[runs[i].GroupNo], "slot %d's group is on the queue", i)
	}
	// The reaper, a QueueTimeout after the last slot enqueued, leaves the
	// runs waiting for their slots.
	b.clock.Set(planned[4].Add(61 * time.Second))
	require.NoError(t, b.s.Reap(ctx))
	for _, r := range b.runs(t, o.ID)[5:] {
		require.Equal(t, store.RunPending, r.State, "group %d waits for its slot", r.GroupNo)
	}

	// No firer while slots 5 and 6 pass; another coordinator takes over
	// after slot 6.
	next := scheduler.New(scheduler.Config{AckTimeout: time.Minute, QueueTimeout: time.Minute, TrackLinger: -1}, b.env.DB, b.env.Redis, b.index,
		queue.NewEnqueuer(asynq.NewClientFromRedisClient(b.env.Redis), b.env.Queue),
		ack.NewReader(ack.NewTracker(b.env.Redis, b.env.Prefix)), b.clock, b.env.Log)
	late := 700 * time.Millisecond
	b.clock.Set(planned[6].Add(late))
	_, tasksBefore := b.queuedGroups(t, o.ID)
	require.NoError(t, next.FireSlots(ctx))
	require.NoError(t, b.s.FireSlots(ctx), "the old leader, still running, finds nothing left to take")
	queued, tasks := b.queuedGroups(t, o.ID)
	require.Len(t, queued, 7)
	for g, n := range queued {
		require.Equal(t, 1, n, "group %d enqueued once", g)
	}
	require.Equal(t, tasksBefore+2, tasks, "the two overdue slots go in a task each")
	require.NoError(t, b.env.DB.First(&got, o.ID).Error)
	require.EqualValues(t, (planned[6].Add(late).Sub(planned[5])).Milliseconds(), got.SlotsLateMs,
		"lateness is measured against the most overdue slot")

	b.clock.Set(planned[7])
	require.NoError(t, next.FireSlots(ctx))
	queued, _ = b.queuedGroups(t, o.ID)
	require.Len(t, queued, 8, "every group on the queue once")
	for _, r := range b.runs(t, o.ID) {
		require.Equal(t, store.RunQueued, r.State)
		require.Equal(t, 1, r.Attempts)
	}
	var left []store.GroupRun
	require.NoError(t, b.env.DB.Where("state = ?", store.RunPending).Find(&left).Error)
	require.Empty(t, left)
}

// A spread send's slot that comes due while the firer waits out the last
// FireLead before another reminder's instant. Injected: a slot moved to
// 100 ms before the instant of a second reminder at the same location, and
// the firer's pass made 200 ms before that instant, on a fake clock.
// Checked: the slot's group goes on the queue at its slot, while the pass
// still waits, and nothing of the second reminder before its instant;
// at the instant the second reminder fires; and a pass between instants
// wakes the firer at the next slot itself, not FireLead before it (which
// would make it pass again and again until the slot), FireLead before
// the next instant, and at once after a pass that claimed a spread send.
func TestSlotDueWhileAFireWaitsGoesOutOnTime(t *testing.T) {
	const spread = 8 * time.Minute
	fireAt := time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC) // 09:00 in Jakarta
	b := setup(t, fireAt.Add(-10*time.Second))
	rid, lid := b.reminder(t, "09:00", "Asia/Jakarta", 160, fireAt.Add(-time.Hour))
	db := b.env.DB
	require.NoError(t, db.Model(&store.Reminder{}).Where("id = ?", rid).Update("spread_s", int64(spread/time.Second)).Error)
	var first store.Reminder
	require.NoError(t, db.First(&first, rid).Error)
	second := store.Reminder{AppID: first.AppID, Key: "r2", Title: "T", Body: "B", Groups: 2, ValidForS: 600}
	require.NoError(t, db.Create(&second).Error)
	require.NoError(t, db.Create(&store.ReminderTime{ReminderID: second.ID, LocationID: lid, LocalSec: 9*3600 + 60, CreatedAt: fireAt.Add(-time.Hour)}).Error)
	require.NoError(t, db.Create(&store.Subscription{ReminderID: second.ID, UserID: "u2", LocationID: lid, GroupNo: 0}).Error)
	ctx := context.Background()
	require.NoError(t, b.s.Plan(ctx))
	occ := b.occurrences(t)
	o, o2 := occ[0], occ[1]
	require.Equal(t, rid, o.ReminderID)
	require.Equal(t, second.ID, o2.ReminderID)
	instant := fireAt.Add(time.Minute)
	require.Equal(t, instant, o2.FireAt.UTC())

	b.clock.Set(fireAt)
	require.NoError(t, b.s.Fire(ctx, o))
	runs := b.runs(t, o.ID)
	require.Len(t, runs, 8)
	moved := runs[3]
	require.NoError(t, db.Model(&store.GroupRun{}).Where("id = ?", moved.ID).Update("slot_at", instant.Add(-100*time.Millisecond)).Error)
	// The slots before it have gone out.
	b.clock.Set(instant.Add(-30 * time.Second))
	require.NoError(t, b.s.FirePass(ctx))

	b.clock.Set(instant.Add(-200 * time.Millisecond))
	done := make(chan error, 1)
	go func() { done <- b.s.FirePass(ctx) }()
	waiting := func() {
		t.Helper()
		testenv.WaitUntil(t, 10*time.Second, "the pass to wait on the clock", func() bool { return b.clock.Waiters() > 0 })
	}
	waiting()
	queued, _ := b.queuedGroups(t, o.ID)
	require.Zero(t, queued[moved.GroupNo], "the slot has not come")
	b.clock.Advance(100 * time.Millisecond)
	testenv.WaitUntil(t, 10*time.Second, "the slot's group on the queue", func() bool {
		queued, _ := b.queuedGroups(t, o.ID)
		return queued[moved.GroupNo] == 1
	})
	waiting()
	select {
	case err := <-done:
		t.Fatalf("the pass ended before the instant: %v", err)
	default:
	}
	queued2, _ := b.queuedGroups(t, o2.ID)
	require.Empty(t, queued2, "nothing of the second reminder before its instant")
	b.clock.Advance(100 * time.Millisecond)
	require.NoError(t, <-done)
	queued2, _ = b.queuedGroups(t, o2.ID)
	require.NotEmpty(t, queued2, "the second reminder fired at its instant")

	// Between instants the firer wakes at the next slot, not FireLead
	// before it (which would loop until the slot came).
	var next store.GroupRun
	require.NoError(t, db.Where("occurrence_id = ? AND state = ? AND slot_at > ?", o.ID, store.RunPending, b.clock.Now()).
		Order("slot_at").First(&next).Error)
	b.clock.Set(b.clock.Now().Add(next.SlotAt.Sub(b.clock.Now()) / 2))
	wake, err := b.s.FireDue(ctx)
	require.NoError(t, err)
	require.Equal(t, next.SlotAt.UTC(), wake.UTC())
	// With an instant next, it wakes FireLead before it.
	tomorrow := fireAt.Add(24 * time.Hour)
	b.clock.Set(tomorrow.Add(-10 * time.Second))
	wake, err = b.s.FireDue(ctx)
	require.NoError(t, err)
	require.Equal(t, tomorrow.Add(-scheduler.DefaultFireLead), wake.UTC())
	// The pass then claims the spread send at its instant; the slots it
	// now has were not there to see before, so the firer passes again at
	// once rather than at the next instant.
	b.clock.Set(wake)
	type result struct {
		wake time.Time
		err  error
	}
	got := make(chan result, 1)
	go func() { w, err := b.s.FireDue(ctx); got <- result{w, err} }()
	waiting()
	b.clock.Set(tomorrow)
	r := <-got
	require.NoError(t, r.err)
	require.False(t, r.wake.After(tomorrow), "woken at %v", r.wake)
	var claimed store.Occurrence
	require.NoError(t, db.Where("reminder_id = ? AND fire_at = ?", rid, tomorrow).First(&claimed).Error)
	require.Equal(t, store.OccFiring, claimed.State)
}
