package scheduler_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/ack"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/store"
	"github.com/chime-dev/chime/worker"
)

// tally is a sender that counts each user it is sent.
type tally struct {
	mu   sync.Mutex
	sent map[string]int
}

func (c *tally) Send(_ context.Context, b *sender.Batch) (sender.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range b.Users {
		c.sent[u]++
	}
	return sender.Result{}, nil
}

// deliver runs every pending task through a worker and records the acks
// until occurrence id is done; it returns how often each user was sent
// and the layouts of the tasks.
func (b *bundle) deliver(t *testing.T, id int64) (map[string]int, []int) {
	t.Helper()
	ctx := context.Background()
	c := &tally{sent: map[string]int{}}
	w := worker.New(worker.Config{ID: "w", Queue: b.env.Queue}, b.env.Redis, b.index, ack.NewTracker(b.env.Redis, b.env.Prefix), c, b.clock, b.env.Log)
	tasks, err := b.insp.ListPendingTasks(b.env.Queue, asynq.PageSize(1000))
	require.NoError(t, err)
	var layouts []int
	for _, task := range tasks {
		tk, err := queue.Decode(task.Type, task.Payload)
		require.NoError(t, err)
		for _, p := range tk.Parts {
			layouts = append(layouts, p.Layout)
		}
		require.NoError(t, w.ProcessTask(ctx, asynq.NewTask(task.Type, task.Payload)))
	}
	_, err = b.insp.DeleteAllPendingTasks(b.env.Queue)
	require.NoError(t, err)
	testenv.WaitUntil(t, 10*time.Second, "the occurrence done", func() bool {
		require.NoError(t, b.s.Track(ctx, 100*time.Millisecond))
		var o store.Occurrence
		require.NoError(t, b.env.DB.First(&o, id).Error)
		return o.State == store.OccDone
	})
	return c.sent, slices.Compact(slices.Sorted(slices.Values(layouts)))
}

// once checks that sent holds each of users exactly once and nobody else.
func once(t *testing.T, users []string, sent map[string]int) {
	t.Helper()
	require.Len(t, sent, len(users), "users sent")
	for _, u := range users {
		require.Equal(t, 1, sent[u], "user %s", u)
	}
}

// A location's layout follows its audience, and a fire keeps the layout it
// was prepared with. Injected: 200 users subscribe while the first fire (4
// groups of 10) is in flight, and the next occurrence of the location is
// prepared then; later 230 users leave. Checked: the subscriptions grow the
// index to 16 groups as they are written, and the preparation during the
// fire records that layout; the fire in flight still reads its 4 groups
// and delivers everyone in the index once; the next fire runs in 16 groups
// and delivers all 240 once; after the departures the layout shrinks to 2
// (only a preparation shrinks it) and the remaining 10 get one delivery
// each.
func TestLayoutFollowsTheAudienceBetweenFires(t *testing.T) {
	fireAt := time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC) // 09:00 in Jakarta
	b := setup(t, fireAt.Add(-time.Minute))
	b.index.GroupSize = 16
	rid, lid := b.reminder(t, "09:00", "Asia/Jakarta", 0, fireAt.Add(-time.Hour))
	require.NoError(t, b.env.DB.Model(&store.Reminder{}).Where("id = ?", rid).Update("groups", 0).Error)
	loc := grouping.Loc{Reminder: rid, Location: lid}
	ctx := context.Background()
	var users []string
	subscribe := func(from, n int) {
		var rows []store.Subscription
		var add []grouping.Member
		for i := from; i < from+n; i++ {
			u := strconv.Itoa(1000 + i)
			users = append(users, u)
			rows = append(rows, store.Subscription{ReminderID: rid, LocationID: lid, UserID: u, GroupNo: grouping.Bucket(u)})
			add = append(add, grouping.Member{Loc: loc, Bucket: grouping.Bucket(u), UserID: u})
		}
		require.NoError(t, b.env.DB.Create(&rows).Error)
		require.NoError(t, b.index.Apply(ctx, add, nil))
	}
	subscribe(0, 40)
	require.NoError(t, b.s.Plan(ctx))
	occ := b.occurrences(t)
	require.Len(t, occ, 2)

	b.clock.Set(occ[0].FireAt)
	require.NoError(t, b.s.Fire(ctx, occ[0]))
	y, err := b.index.Groups(ctx, loc)
	require.NoError(t, err)
	require.Equal(t, 4, y.N, "40 users in groups of at most 16")

	// While it is in flight: more users, and the next fire is prepared.
	subscribe(40, 200)
	_, err = b.s.Prepare(ctx, occ[1])
	require.NoError(t, err)
	y, err = b.index.Groups(ctx, loc)
	require.NoError(t, err)
	require.Equal(t, 16, y.N, "240 users in groups of at most 16: the writes grew the layout")
	var runs []store.GroupRun
	require.NoError(t, b.env.DB.Where("occurrence_id = ?", occ[1].ID).Find(&runs).Error)
	for _, r := range runs {
		require.Equal(t, 16, r.Layout)
	}

	sent, layouts := b.deliver(t, occ[0].ID)
	require.Equal(t, []int{4}, layouts)
	once(t, users, sent)

	// The next fire, with the first done: the prepared layout is redone.
	b.clock.Set(occ[1].FireAt)
	require.NoError(t, b.s.Fire(ctx, occ[1]))
	sent, layouts = b.deliver(t, occ[1].ID)
	require.Equal(t, []int{16}, layouts, "240 users in groups of at most 16")
	once(t, users, sent)
	require.NoError(t, b.env.DB.Where("occurrence_id = ?", occ[1].ID).Find(&runs).Error)
	for _, r := range runs {
		require.Equal(t, 16, r.Layout)
	}

	// Most users leave; the day after, the layout shrinks.
	var gone []grouping.Member
	for _, u := range users[:230] {
		require.NoError(t, b.env.DB.Where("reminder_id = ? AND user_id = ?", rid, u).Delete(&store.Subscription{}).Error)
		gone = append(gone, grouping.Member{Loc: loc, Bucket: grouping.Bucket(u), UserID: u})
	}
	require.NoError(t, b.index.Apply(ctx, nil, gone))
	users = users[230:]
	b.clock.Set(occ[1].FireAt.Add(time.Hour))
	require.NoError(t, b.s.Plan(ctx))
	occ = b.occurrences(t)
	require.Len(t, occ, 3)
	b.clock.Set(occ[2].FireAt)
	require.NoError(t, b.s.Fire(ctx, occ[2]))
	sent, layouts = b.deliver(t, occ[2].ID)
	require.Equal(t, []int{2}, layouts, "10 users: halved while the groups average under 4")
	once(t, users, sent)
}
