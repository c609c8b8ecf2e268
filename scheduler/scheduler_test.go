package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/ack"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/scheduler"
	"github.com/chime-dev/chime/store"
)

type bundle struct {
	env   *testenv.Env
	clock *clock.Fake
	s     *scheduler.Scheduler
	index *grouping.Index
	insp  *asynq.Inspector
}

func setup(t *testing.T, now time.Time) *bundle {
	return setupCfg(t, now, scheduler.Config{AckTimeout: time.Minute, QueueTimeout: time.Minute})
}

// reminder creates a reminder firing daily at local time at in zone, with
// n subscribers, and returns its ID and the location's ID.
func (b *bundle) reminder(t *testing.T, at, zone string, n int, created time.Time) (int64, int64) {
	t.Helper()
	db := b.env.DB
	app := store.App{Name: "a"}
	require.NoError(t, db.Create(&app).Error)
	r := store.Reminder{AppID: app.ID, Key: "r", Title: "T", Body: "B", Groups: 8, ValidForS: 600}
	require.NoError(t, db.Create(&r).Error)
	l := store.Location{AppID: app.ID, Name: "here", Zone: zone}
	require.NoError(t, db.Create(&l).Error)
	sec, err := localtime.Parse(at)
	require.NoError(t, err)
	require.NoError(t, db.Create(&store.ReminderTime{ReminderID: r.ID, LocationID: l.ID, LocalSec: int(sec), CreatedAt: created}).Error)
	var subs []store.Subscription
	for i := range n {
		u := string(rune('a'+i%26)) + time.Duration(i).String()
		subs = append(subs, store.Subscription{ReminderID: r.ID, UserID: u, LocationID: l.ID, GroupNo: grouping.Bucket(u)})
	}
	if n > 0 {
		require.NoError(t, db.Create(&subs).Error)
	}
	return r.ID, l.ID
}

// pending returns the tasks on the queue and the groups they carry.
func (b *bundle) pending(t *testing.T) (tasks, groups int) {
	t.Helper()
	list, err := b.insp.ListPendingTasks(b.env.Queue, asynq.PageSize(1000))
	require.NoError(t, err)
	for _, task := range list {
		tk, err := queue.Decode(task.Type, task.Payload)
		require.NoError(t, err)
		groups += len(tk.Parts)
	}
	return len(list), groups
}

func (b *bundle) occurrences(t *testing.T) []store.Occurrence {
	t.Helper()
	var occ []store.Occurrence
	require.NoError(t, b.env.DB.Order("fire_at").Find(&occ).Error)
	return occ
}

// The planner turns a daily local time into one occurrence per day within
// the horizon, at the right UTC instant, and planning again adds nothing.
func TestPlanIsIdempotentAndZoneCorrect(t *testing.T) {
	now := time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC)
	b := setup(t, now)
	b.reminder(t, "02:30", "America/New_York", 0, now.Add(-time.Hour))
	ctx := context.Background()
	require.NoError(t, b.s.Plan(ctx))
	require.NoError(t, b.s.Plan(ctx))
	occ := b.occurrences(t)
	// Horizon 26h from Saturday noon UTC: Sunday 2026-03-08 02:30 does not
	// exist in New York (clocks jump 02:00 → 03:00), so it fires at the
	// first instant after the gap, 03:00 EDT = 07:00 UTC.
	require.Len(t, occ, 1)
	require.Equal(t, time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC), occ[0].FireAt.UTC())
	require.Equal(t, store.OccScheduled, occ[0].State)
	require.Equal(t, occ[0].FireAt.Add(10*time.Minute), occ[0].ExpiresAt.UTC())
}

// Removing a reminder time cancels its scheduled occurrence; adding it
// back revives it.
func TestPlanCancelsAndRevives(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	b := setup(t, now)
	rid, _ := b.reminder(t, "09:00", "Asia/Jakarta", 0, now.Add(-time.Hour))
	ctx := context.Background()
	require.NoError(t, b.s.Plan(ctx))
	require.Len(t, b.occurrences(t), 2) // 02:00 UTC today and tomorrow
	var rt store.ReminderTime
	require.NoError(t, b.env.DB.Where("reminder_id = ?", rid).First(&rt).Error)
	require.NoError(t, b.env.DB.Delete(&rt).Error)
	require.NoError(t, b.s.Plan(ctx))
	for _, o := range b.occurrences(t) {
		require.Equal(t, store.OccCanceled, o.State)
	}
	rt.ID = 0
	require.NoError(t, b.env.DB.Create(&rt).Error)
	require.NoError(t, b.s.Plan(ctx))
	for _, o := range b.occurrences(t) {
		require.Equal(t, store.OccScheduled, o.State)
	}
}

// Catch-up: an instant that passed while no coordinator ran fires late if
// it is still inside its grace window (here the validity window), and is
// recorded as missed otherwise.
func TestFireLateOrExpire(t *testing.T) {
	fireAt := time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC) // 09:00 in Jakarta
	b := setup(t, fireAt.Add(5*time.Minute))
	b.reminder(t, "09:00", "Asia/Jakarta", 40, fireAt.Add(-time.Hour))
	ctx := context.Background()
	require.NoError(t, b.s.Plan(ctx))
	occ := b.occurrences(t)
	require.Equal(t, fireAt, occ[0].FireAt.UTC(), "an instant 5 minutes ago, inside the 10-minute window, is planned")
	require.NoError(t, b.s.Fire(ctx, occ[0]))
	got := b.occurrences(t)[0]
	require.Equal(t, store.OccFiring, got.State)
	tasks, groups := b.pending(t)
	require.Equal(t, got.GroupsTotal, groups)
	require.Equal(t, 1, tasks, "8 groups of 5 users share one task")

	// The next day's instant is found 11 minutes late, past its grace window: missed, nothing sent.
	next := b.occurrences(t)[1]
	b.clock.Set(next.FireAt.Add(11 * time.Minute))
	require.NoError(t, b.s.Fire(ctx, next))
	var after store.Occurrence
	require.NoError(t, b.env.DB.First(&after, next.ID).Error)
	require.Equal(t, store.OccMissed, after.State)
	var runs int64
	require.NoError(t, b.env.DB.Model(&store.GroupRun{}).Where("occurrence_id = ?", next.ID).Count(&runs).Error)
	require.Zero(t, runs)
}

// fired returns a bundle whose one occurrence (100 users at 09:00 in
// Jakarta) has just fired.
func fired(t *testing.T) (*bundle, store.Occurrence) {
	fireAt := time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC)
	b := setup(t, fireAt)
	b.reminder(t, "09:00", "Asia/Jakarta", 100, fireAt.Add(-time.Hour))
	ctx := context.Background()
	require.NoError(t, b.s.Plan(ctx))
	o := b.occurrences(t)[0]
	require.NoError(t, b.s.Fire(ctx, o))
	return b, o
}

// Fault: the coordinator dies after winning the compare-and-set but before
// its tasks reach the queue (simulated by emptying the queue after Fire).
// Checked: after QueueTimeout the reaper enqueues every group again, and
// nothing before it.
func TestReaperRecoversGroupsWhoseTasksWereLost(t *testing.T) {
	b, o := fired(t)
	ctx := context.Background()
	_, err := b.insp.DeleteAllPendingTasks(b.env.Queue)
	require.NoError(t, err)

	b.clock.Advance(30 * time.Second)
	require.NoError(t, b.s.Reap(ctx))
	info, err := b.insp.GetQueueInfo(b.env.Queue)
	require.NoError(t, err)
	require.Zero(t, info.Pending, "the reaper acted before QueueTimeout")

	b.clock.Advance(31 * time.Second)
	require.NoError(t, b.s.Reap(ctx))
	info, err = b.insp.GetQueueInfo(b.env.Queue)
	require.NoError(t, err)
	var got store.Occurrence
	require.NoError(t, b.env.DB.First(&got, o.ID).Error)
	require.Equal(t, got.GroupsTotal, info.Pending, "every group is back on the queue")
}

// A fire at the instant writes no group run: the runs prepared ahead stay
// pending, which for a firing occurrence means on the queue. Fault: the
// tasks are lost right after the fire (the queue emptied). Checked: the
// runs are as prepared (pending, queued_at the preparation's); the reaper
// counts QueueTimeout from the fire, not from the preparation 20 s
// before, and then enqueues every group again.
func TestReaperCountsAPreparedRunFromItsFire(t *testing.T) {
	fireAt := time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC) // 09:00 in Jakarta
	preparedAt := fireAt.Add(-20 * time.Second)
	b := setup(t, preparedAt)
	b.reminder(t, "09:00", "Asia/Jakarta", 100, fireAt.Add(-time.Hour))
	ctx := context.Background()
	require.NoError(t, b.s.Plan(ctx))
	require.NoError(t, b.s.FirePass(ctx), "the pass 20 s ahead prepares")
	b.clock.Set(fireAt)
	require.NoError(t, b.s.FirePass(ctx), "the pass at the instant fires")
	o := b.occurrences(t)[0]
	require.Equal(t, store.OccFiring, o.State)
	var runs []store.GroupRun
	require.NoError(t, b.env.DB.Where("occurrence_id = ?", o.ID).Find(&runs).Error)
	require.Len(t, runs, o.GroupsTotal)
	for _, r := range runs {
		require.Equal(t, store.RunPending, r.State, "group %d", r.GroupNo)
		require.True(t, r.QueuedAt.Equal(preparedAt), "group %d written at the fire: %v", r.GroupNo, r.QueuedAt)
	}
	_, err := b.insp.DeleteAllPendingTasks(b.env.Queue)
	require.NoError(t, err)

	// 60.5 s after the preparation, 40.5 s after the fire.
	b.clock.Advance(40*time.Second + 500*time.Millisecond)
	require.NoError(t, b.s.Reap(ctx))
	_, groups := b.pending(t)
	require.Zero(t, groups, "the reaper counted from the preparation")

	b.clock.Advance(20 * time.Second)
	require.NoError(t, b.s.Reap(ctx))
	_, groups = b.pending(t)
	require.Equal(t, o.GroupsTotal, groups, "every group is back on the queue")
}

// Fault: a worker sends its start ack and dies. Checked: after AckTimeout
// the reaper queues the group again as its next attempt.
func TestReaperRequeuesSilentStartedGroup(t *testing.T) {
	b, o := fired(t)
	ctx := context.Background()
	var run store.GroupRun
	require.NoError(t, b.env.DB.Where("occurrence_id = ?", o.ID).First(&run).Error)

	tr := ack.NewTracker(b.env.Redis, b.env.Prefix)
	_, err := tr.Start(ctx, ack.Lease{Group: ack.Group{Occurrence: o.ID, Group: run.GroupNo}, Attempt: 1, Worker: "w-dead", Token: "tok"}, time.Second, b.clock.Now())
	require.NoError(t, err)
	testenv.WaitUntil(t, 10*time.Second, "the start ack recorded", func() bool {
		require.NoError(t, b.s.Track(ctx, 100*time.Millisecond))
		require.NoError(t, b.env.DB.First(&run, run.ID).Error)
		return run.State == store.RunStarted
	})

	b.clock.Advance(61 * time.Second)
	require.NoError(t, b.s.Reap(ctx))
	require.NoError(t, b.env.DB.First(&run, run.ID).Error)
	require.Equal(t, store.RunQueued, run.State)
	require.Equal(t, 2, run.Attempts)
	_, err = b.insp.GetTaskInfo(b.env.Queue, queue.Payload{Message: message.Message{Occurrence: o.ID, Group: run.GroupNo}, Attempt: 2}.TaskID())
	require.NoError(t, err, "attempt 2 is on the queue")
}

// A paused reminder does not fire: planning cancels its occurrences, an
// instant that comes before the planner sees the pause is canceled at the
// fire, and unpausing plans the future fires again.
func TestPausedReminderDoesNotFire(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	b := setup(t, now)
	rid, _ := b.reminder(t, "09:00", "Asia/Jakarta", 50, now.Add(-time.Hour))
	ctx := context.Background()
	require.NoError(t, b.s.Plan(ctx))
	occ := b.occurrences(t)
	require.Len(t, occ, 2)

	// Paused, and the instant comes before the planner runs again.
	require.NoError(t, b.env.DB.Model(&store.Reminder{}).Where("id = ?", rid).
		Updates(map[string]any{"paused": true, "updated_at": now.Add(time.Second)}).Error)
	b.clock.Set(occ[0].FireAt)
	require.NoError(t, b.s.Fire(ctx, occ[0]))
	var first store.Occurrence
	require.NoError(t, b.env.DB.First(&first, occ[0].ID).Error)
	require.Equal(t, store.OccCanceled, first.State)
	_, err := b.insp.GetQueueInfo(b.env.Queue)
	require.Error(t, err, "nothing was enqueued")

	require.NoError(t, b.s.Plan(ctx))
	var second store.Occurrence
	require.NoError(t, b.env.DB.First(&second, occ[1].ID).Error)
	require.Equal(t, store.OccCanceled, second.State, "planning cancels the paused reminder's next fire")

	require.NoError(t, b.env.DB.Model(&store.Reminder{}).Where("id = ?", rid).Update("paused", false).Error)
	require.NoError(t, b.s.Plan(ctx))
	require.NoError(t, b.env.DB.First(&second, occ[1].ID).Error)
	require.Equal(t, store.OccScheduled, second.State, "unpausing plans it again")
	require.NoError(t, b.env.DB.First(&first, occ[0].ID).Error)
	require.Equal(t, store.OccCanceled, first.State, "a past instant is not revived")
}
