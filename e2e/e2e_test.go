package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/ack"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/scheduler"
	"github.com/chime-dev/chime/store"
)

var fourZones = []place{
	{"mecca", "Asia/Riyadh"},
	{"jakarta", "Asia/Jakarta"},
	{"new-york", "America/New_York"},
	{"lord-howe", "Australia/Lord_Howe"},
}

// A reminder in four zones with 12,000 subscribers fires once per zone and
// every user is delivered exactly once, as counted at a real webhook receiver.
func TestFireDeliversEveryUserExactlyOnce(t *testing.T) {
	b := setup(t)
	b.startCoordinator("c1")
	b.startWorker("w1")
	b.startWorker("w2")

	const users = 12000
	b.putReminder("fajr", 32, time.Now().Add(2*time.Hour), fourZones)
	per := b.register("fajr", 5_000_000, users, fourZones)
	fireAt := nextSecond(2 * time.Second)
	b.putReminder("fajr", 32, fireAt, fourZones)

	occ := b.waitDone("fajr", len(fourZones), time.Minute)
	st := b.sink.Stats()
	require.Equal(t, users, st.Users, "distinct users delivered")
	require.Zero(t, st.Duplicates, "duplicate deliveries")
	for _, p := range fourZones {
		require.Equal(t, per[p.name], st.ByLocation[p.name], p.name)
	}
	var recorded int64
	for _, o := range occ {
		if !o.FireAt.Equal(fireAt) {
			continue // tomorrow's, or the canceled placeholders
		}
		require.Equal(t, "done", o.State)
		require.NotNil(t, o.LateMs, "a fired occurrence says how late it fired")
		require.Less(t, *o.LateMs, int64(5000))
		require.Equal(t, o.GroupsTotal, o.GroupsDone)
		require.EqualValues(t, per[o.Location], o.Delivered, o.Location)
		recorded += o.Delivered
	}
	require.EqualValues(t, users, recorded)
	require.False(t, st.First.Before(fireAt), "first delivery %v before the fire instant %v", st.First, fireAt)
	t.Logf("%d users in %d zones: first delivery %v after the instant, last %v", users, len(fourZones),
		st.First.Sub(fireAt), st.Last.Sub(fireAt))
}

// Fault: a worker process is killed with SIGKILL while it is in the middle of
// its groups. Checked: every user still receives the reminder, the dead
// worker's groups are queued again after the ack timeout and resume at their
// checkpoint, and no group repeats more than one chunk.
func TestWorkerKilledMidGroupLosesNoUser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a worker process")
	}
	b := setup(t)
	bin := build(t, "worker")

	// Slow the receiver down so the kill lands mid-group: groups of ~375
	// users in chunks of 50 take ~8 requests each.
	b.sink.Delay = 20 * time.Millisecond
	const users, groups, chunk = 3000, 8, 50
	b.cfg.ChunkSize = chunk
	b.startCoordinator("c1")
	worker := func(name string) *exec.Cmd {
		return b.startWorkerProcess(bin, name, "CHIME_SENDER=webhook", "CHIME_WEBHOOK_URL="+b.hook, "CHIME_METRICS_ADDR=127.0.0.1:0")
	}
	first := worker("doomed")
	t.Cleanup(func() { _ = first.Process.Kill(); _, _ = first.Process.Wait() })

	places := []place{{"istanbul", "Europe/Istanbul"}}
	b.putReminder("maghrib", groups, time.Now().Add(2*time.Hour), places)
	b.register("maghrib", 7_000_000, users, places)
	fireAt := nextSecond(2 * time.Second)
	b.putReminder("maghrib", groups, fireAt, places)

	testenv.WaitUntil(t, time.Minute, "a third of the users delivered", func() bool { return b.sink.Stats().Users >= users/3 })
	require.NoError(t, first.Process.Signal(os.Kill))
	_, _ = first.Process.Wait()
	killedAt := b.sink.Stats().Users
	require.Less(t, killedAt, users, "the worker finished before it could be killed")
	t.Logf("killed the worker after %d of %d users", killedAt, users)

	second := worker("survivor")
	t.Cleanup(func() { _ = second.Process.Signal(os.Interrupt); _, _ = second.Process.Wait() })

	occ := b.waitDone("maghrib", 1, 2*time.Minute)
	st := b.sink.Stats()
	require.Equal(t, users, st.Users, "every user delivered")
	fired := at(occ, fireAt)
	require.Len(t, fired, 1)
	require.EqualValues(t, users, fired[0].Delivered, "recorded deliveries")

	// Duplicates are bounded by one chunk per group.
	dups := map[int]int{}
	for i := range users {
		u := strconv.Itoa(7_000_000 + i)
		if n := b.sink.Count(u); n > 1 {
			dups[grouping.Of(u, groups)] += n - 1
		}
	}
	for g, n := range dups {
		require.LessOrEqual(t, n, chunk, "group %d repeated %d deliveries", g, n)
	}
	var requeued int64
	require.NoError(t, b.env.DB.Model(&store.GroupRun{}).Where("attempts > 1").Count(&requeued).Error)
	require.Positive(t, requeued, "no group was queued again after the kill")
	t.Logf("duplicates per group: %v; groups queued again: %d", dups, requeued)
}

// startWorkerProcess starts the worker command bin as replica name, for
// fault tests that kill it: chunks of b.cfg.ChunkSize, a 2s lease, 4 groups
// at a time, and extra environment naming its delivery channel. The caller
// ends and waits for the process.
func (b *bundle) startWorkerProcess(bin, name string, extra ...string) *exec.Cmd {
	b.t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"REDIS_URL="+b.env.RedisURL, "MYSQL_DSN="+b.env.DSN, "CHIME_REDIS_PREFIX="+b.env.Prefix, "CHIME_QUEUE="+b.env.Queue,
		"CHIME_CHUNK_SIZE="+strconv.Itoa(b.cfg.ChunkSize), "CHIME_LEASE_TTL=2s", "CHIME_WORKER_CONCURRENCY=4",
		"CHIME_REPLICA_ID="+name, "CHIME_LOG_LEVEL=warn")
	cmd.Env = append(cmd.Env, extra...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(b.t, cmd.Start())
	return cmd
}

// Two coordinators run at once against the same Redis and MySQL: one leads,
// each occurrence fires once, and every user is delivered once.
func TestTwoCoordinatorsDeliverOnce(t *testing.T) {
	b := setup(t)
	b.startCoordinator("c1")
	b.startCoordinator("c2")
	b.startWorker("w1")

	places := fourZones[:3]
	const users = 3000
	b.putReminder("live", 16, time.Now().Add(2*time.Hour), places)
	b.register("live", 9_000_000, users, places)
	fireAt := nextSecond(2 * time.Second)
	b.putReminder("live", 16, fireAt, places)

	occ := at(b.waitDone("live", len(places), time.Minute), fireAt)
	require.Len(t, occ, len(places))
	st := b.sink.Stats()
	require.Equal(t, users, st.Users)
	require.Zero(t, st.Duplicates)
	var runs []store.GroupRun
	require.NoError(t, b.env.DB.Find(&runs).Error)
	total := 0
	for _, o := range occ {
		total += o.GroupsTotal // canceled placeholders have none
	}
	require.Len(t, runs, total, "one group run per group")
	for _, r := range runs {
		require.Equal(t, 1, r.Attempts, "group %d of occurrence %d", r.GroupNo, r.OccurrenceID)
	}
}

// Two schedulers that both believe they lead fire the same occurrence at the
// same moment: the compare-and-set in MySQL lets one enqueue, so the queue
// holds exactly one task per group.
func TestConcurrentFireEnqueuesEachGroupOnce(t *testing.T) {
	b := setup(t)
	b.startCoordinator("api-only") // serves the API; its scheduler is the leader but the reminder is far ahead
	places := []place{{"cairo", "Africa/Cairo"}}
	b.putReminder("sale", 64, time.Now().Add(3*time.Hour), places)
	b.register("sale", 1, 5000, places)

	var o store.Occurrence
	require.NoError(t, b.env.DB.Where("state = ?", store.OccScheduled).Order("fire_at").First(&o).Error)
	// Pretend the instant has come.
	fake := clock.NewFake(o.FireAt.Add(10 * time.Millisecond))
	ctx := context.Background()
	newScheduler := func() *scheduler.Scheduler {
		client := asynq.NewClientFromRedisClient(b.env.Redis)
		index := grouping.NewIndex(b.env.Redis, b.env.DB, b.env.Prefix)
		return scheduler.New(scheduler.Config{}, b.env.DB, b.env.Redis, index,
			queue.NewEnqueuer(client, b.env.Queue), ack.NewReader(ack.NewTracker(b.env.Redis, b.env.Prefix)), fake, b.env.Log)
	}
	s1, s2 := newScheduler(), newScheduler()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []*scheduler.Scheduler{s1, s2} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.Fire(ctx, o) }()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])

	y, err := grouping.NewIndex(b.env.Redis, b.env.DB, b.env.Prefix).Groups(ctx, grouping.Loc{Reminder: o.ReminderID, Location: o.LocationID})
	require.NoError(t, err)
	groups := y.Groups
	tasks, err := asynq.NewInspectorFromRedisClient(b.env.Redis).ListPendingTasks(b.env.Queue, asynq.PageSize(1000))
	require.NoError(t, err)
	var queued []int
	for _, task := range tasks {
		tk, err := queue.Decode(task.Type, task.Payload)
		require.NoError(t, err)
		for _, p := range tk.Parts {
			queued = append(queued, p.Group)
		}
	}
	slices.Sort(queued)
	require.Equal(t, groups, queued, "each group once on the queue")
	var runs int64
	require.NoError(t, b.env.DB.Model(&store.GroupRun{}).Where("occurrence_id = ?", o.ID).Count(&runs).Error)
	require.EqualValues(t, len(groups), runs)
	require.Equal(t, http.StatusOK, b.call(http.MethodGet, "/v1/occurrences?reminder=sale", nil, nil))
}

// A user who moves to another location before the fire is reminded once,
// at the new location's instant, never at the old one's.
func TestUserWhoMovesIsRemindedOnceAtTheNewPlace(t *testing.T) {
	b := setup(t)
	b.startCoordinator("c1")
	b.startWorker("w1")
	places := []place{{"cairo", "Africa/Cairo"}, {"karachi", "Asia/Karachi"}}
	b.putReminder("asr", 8, time.Now().Add(2*time.Hour), places)
	b.register("asr", 100, 400, places) // users 100..499, alternating
	// Half of Cairo's users move to Karachi.
	var moves []map[string]string
	for i := 100; i < 500; i += 4 {
		moves = append(moves, map[string]string{"user_id": strconv.Itoa(i), "location": "karachi"})
	}
	require.Equal(t, http.StatusOK, b.call(http.MethodPost, "/v1/reminders/asr/subscribers", map[string]any{"subscribers": moves}, nil))

	// Both places fire at the same instant, from their own local times.
	fireAt := nextSecond(2 * time.Second)
	b.putReminder("asr", 8, fireAt, places)
	occ := at(b.waitDone("asr", 2, time.Minute), fireAt)
	require.Len(t, occ, 2)
	st := b.sink.Stats()
	require.Equal(t, 400, st.Users)
	require.Zero(t, st.Duplicates, "a moved user was reminded twice")
	require.Equal(t, 100, st.ByLocation["cairo"], "Cairo keeps the half that stayed")
	require.Equal(t, 300, st.ByLocation["karachi"])
}
