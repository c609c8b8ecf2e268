package scheduler_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/scheduler"
	"github.com/chime-dev/chime/store"
)

// 1,101 small locations due at one instant are prepared ahead together and
// claimed together, by two coordinators racing for them, one of which
// prepares them all together at the instant. Injected: after
// the preparation, one location's index is dropped from Redis (its prepared
// layout no longer holds) and a location of a reminder of 8 fixed groups
// gains users in groups it did not have; both coordinators run the firer's pass at the instant at once.
// Checked: every occurrence fires once (firing, its runs the groups fired,
// still pending: on the queue), the
// queue holds every group of every occurrence exactly once, in tasks shared
// by many locations, and delivering them reaches each of the 2,221 users
// once.
func TestManyLocationsFireTogether(t *testing.T) {
	fireAt := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	b := setup(t, fireAt.Add(-10*time.Second))
	db := b.env.DB
	ctx := context.Background()
	app := store.App{Name: "a"}
	require.NoError(t, db.Create(&app).Error)
	r := store.Reminder{AppID: app.ID, Key: "r", Title: "T", Body: "B", ValidForS: 600}
	require.NoError(t, db.Create(&r).Error)
	sec, err := localtime.Parse("09:00")
	require.NoError(t, err)
	const locations = 1100
	var users []string
	var locs []store.Location
	var subs []store.Subscription
	for i := range locations {
		l := store.Location{AppID: app.ID, Name: "city" + strconv.Itoa(i), Zone: "UTC"}
		require.NoError(t, db.Create(&l).Error)
		locs = append(locs, l)
		require.NoError(t, db.Create(&store.ReminderTime{ReminderID: r.ID, LocationID: l.ID, LocalSec: int(sec), CreatedAt: fireAt.Add(-time.Hour)}).Error)
		for j := range 2 {
			u := fmt.Sprintf("%d", 1000*i+j)
			users = append(users, u)
			subs = append(subs, store.Subscription{ReminderID: r.ID, UserID: u, LocationID: l.ID, GroupNo: grouping.Bucket(u)})
		}
	}
	// A reminder of 8 fixed groups at a location of its own, one user.
	r8 := store.Reminder{AppID: app.ID, Key: "r8", Title: "T", Body: "B", ValidForS: 600, Groups: 8}
	require.NoError(t, db.Create(&r8).Error)
	l8 := store.Location{AppID: app.ID, Name: "fixed", Zone: "UTC"}
	require.NoError(t, db.Create(&l8).Error)
	require.NoError(t, db.Create(&store.ReminderTime{ReminderID: r8.ID, LocationID: l8.ID, LocalSec: int(sec), CreatedAt: fireAt.Add(-time.Hour)}).Error)
	users = append(users, "solo")
	subs = append(subs, store.Subscription{ReminderID: r8.ID, UserID: "solo", LocationID: l8.ID, GroupNo: grouping.Bucket("solo")})
	require.NoError(t, db.CreateInBatches(&subs, 1000).Error)
	require.NoError(t, b.s.Plan(ctx))

	// A second coordinator, believing it leads too, that prepared nothing
	// ahead (as a leader that takes over at the instant).
	other := setupWith(b)
	require.NoError(t, b.s.FirePass(ctx), "the pass before the instant prepares")
	var pending int64
	require.NoError(t, db.Model(&store.GroupRun{}).Where("state = ?", store.RunPending).Count(&pending).Error)
	require.GreaterOrEqual(t, pending, int64(locations), "every location's runs created ahead")

	// After the preparation: one index lost, one location grows.
	require.NoError(t, b.index.Drop(ctx, grouping.Loc{Reminder: r.ID, Location: locs[7].ID}))
	grown := grouping.Loc{Reminder: r8.ID, Location: l8.ID}
	before, err := b.index.Groups(ctx, grown)
	require.NoError(t, err)
	require.Len(t, before.Groups, 1)
	var add []grouping.Member
	for j := range 20 {
		u := fmt.Sprintf("x%d", j)
		users = append(users, u)
		require.NoError(t, db.Create(&store.Subscription{ReminderID: r8.ID, UserID: u, LocationID: l8.ID, GroupNo: grouping.Bucket(u)}).Error)
		add = append(add, grouping.Member{Loc: grown, Bucket: grouping.Bucket(u), UserID: u})
	}
	require.NoError(t, b.index.Apply(ctx, add, nil))
	after, err := b.index.Groups(ctx, grown)
	require.NoError(t, err)
	require.Greater(t, len(after.Groups), 1, "the new users fill groups the preparation did not list")

	b.clock.Set(fireAt)
	other.clock.Set(fireAt)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []*scheduler.Scheduler{b.s, other.s} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.FirePass(ctx) }()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])

	var occ []store.Occurrence
	for _, o := range b.occurrences(t) {
		if o.FireAt.Equal(fireAt) {
			occ = append(occ, o)
		}
	}
	require.Len(t, occ, locations+1)
	want := map[[2]int64]bool{}
	for _, o := range occ {
		require.Equal(t, store.OccFiring, o.State, "occurrence %d", o.ID)
		y, err := b.index.Groups(ctx, grouping.Loc{Reminder: o.ReminderID, Location: o.LocationID})
		require.NoError(t, err)
		require.Equal(t, len(y.Groups), o.GroupsTotal, "occurrence %d", o.ID)
		for _, g := range y.Groups {
			want[[2]int64{o.ID, int64(g)}] = true
		}
	}
	// The runs are the fired groups, no more: the index's, still pending
	// (on the queue), with any the preparation made for another layout
	// deleted.
	var runs []store.GroupRun
	require.NoError(t, db.Joins("JOIN occurrences o ON o.id = group_runs.occurrence_id").
		Where("o.fire_at = ?", fireAt).Find(&runs).Error)
	ran := map[[2]int64]bool{}
	for _, r := range runs {
		require.Equal(t, store.RunPending, r.State, "run of occurrence %d group %d", r.OccurrenceID, r.GroupNo)
		ran[[2]int64{r.OccurrenceID, int64(r.GroupNo)}] = true
	}
	require.Equal(t, want, ran, "the runs are the groups fired")
	list, err := b.insp.ListPendingTasks(b.env.Queue)
	require.NoError(t, err)
	queued := map[[2]int64]int{}
	for _, task := range list {
		tk, err := queue.Decode(task.Type, task.Payload)
		require.NoError(t, err)
		for _, p := range tk.Parts {
			queued[[2]int64{p.Occurrence, int64(p.Group)}]++
		}
	}
	require.Len(t, queued, len(want), "groups on the queue")
	for k, n := range queued {
		require.True(t, want[k], "group %v queued but not in the index", k)
		require.Equal(t, 1, n, "group %v queued %d times", k, n)
	}
	require.Less(t, len(list), locations/20, "small locations share tasks")

	sent, _ := b.deliver(t, occ[len(occ)-1].ID)
	once(t, users, sent)
	testenv.WaitUntil(t, 30*time.Second, "every occurrence done", func() bool {
		require.NoError(t, b.s.Track(ctx, 100*time.Millisecond))
		var n int64
		require.NoError(t, db.Model(&store.Occurrence{}).Where("fire_at = ? AND state <> ?", fireAt, store.OccDone).Count(&n).Error)
		return n == 0
	})
}

// peer is a second coordinator's scheduler on b's servers, with a clock of
// its own.
type peer struct {
	s     *scheduler.Scheduler
	clock *clock.Fake
}

func setupWith(b *bundle) peer {
	fake := clock.NewFake(b.clock.Now())
	s, _ := newScheduler(b.env, fake, scheduler.Config{AckTimeout: time.Minute, QueueTimeout: time.Minute})
	return peer{s: s, clock: fake}
}
