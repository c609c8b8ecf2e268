package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/ack"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/sender/webhook"
	"github.com/chime-dev/chime/sender/webhook/sink"
	"github.com/chime-dev/chime/store"
	"github.com/chime-dev/chime/worker"
)

const (
	reminderID = 31
	locationID = 5
	groups     = 4
	target     = 2 // the group delivered
	chunk      = 10
)

var fireAt = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// recorder is a sender that keeps what it is sent. Hooks can make a call
// fail or change what it reports.
type recorder struct {
	mu      sync.Mutex
	calls   int
	batches []sender.Batch
	// before runs at the start of call n (1-based); an error fails the call.
	before func(n int, b *sender.Batch) (sender.Result, error)
}

func (r *recorder) Send(ctx context.Context, b *sender.Batch) (sender.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	var res sender.Result
	if r.before != nil {
		var err error
		if res, err = r.before(r.calls, b); err != nil {
			return sender.Result{}, err
		}
	}
	c := *b
	c.Users = slices.Clone(b.Users)
	r.batches = append(r.batches, c)
	return res, nil
}

func (r *recorder) sent() ([]sender.Batch, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var users []string
	for _, b := range r.batches {
		users = append(users, b.Users...)
	}
	return slices.Clone(r.batches), users
}

type fixture struct {
	env     *testenv.Env
	index   *grouping.Index
	acks    *ack.Tracker
	clock   *clock.Fake
	members []string // of the target group, sorted
	all     []string // every user of the reminder at the location
}

// setup subscribes users to the reminder at the location (and some to other
// places) and returns the target group's members.
func setup(t *testing.T, users int) *fixture {
	t.Helper()
	return setupIDs(t, users, func(i int) string { return strconv.Itoa(100_000 + i*37) })
}

// setupIDs is setup with the i-th user's ID from id.
func setupIDs(t *testing.T, users int, id func(i int) string) *fixture {
	t.Helper()
	env := testenv.New(t)
	f := &fixture{
		env:   env,
		index: grouping.NewIndex(env.Redis, env.DB, env.Prefix),
		acks:  ack.NewTracker(env.Redis, env.Prefix),
		clock: clock.NewFake(fireAt.Add(2 * time.Second)),
	}
	var rows []store.Subscription
	for i := range users {
		u := id(i)
		g := grouping.Of(u, groups)
		rows = append(rows, store.Subscription{ReminderID: reminderID, LocationID: locationID, UserID: u, GroupNo: grouping.Bucket(u)})
		if g == target {
			f.members = append(f.members, u)
		}
		f.all = append(f.all, u)
	}
	// Same group number elsewhere: another location, another reminder.
	rows = append(rows,
		store.Subscription{ReminderID: reminderID + 1, LocationID: locationID, UserID: "other-reminder", GroupNo: target},
		store.Subscription{ReminderID: reminderID, LocationID: locationID + 1, UserID: "other-location", GroupNo: target},
	)
	// The reminder fixes its group count, so a rebuild picks the layout of
	// the tasks.
	require.NoError(t, env.DB.Create(&store.Reminder{ID: reminderID, AppID: 1, Key: "water", Title: "Drink", Groups: groups}).Error)
	require.NoError(t, env.DB.CreateInBatches(rows, 500).Error)
	slices.Sort(f.members)
	return f
}

func (f *fixture) worker(t *testing.T, id string, s sender.Sender) *worker.Worker {
	return f.workerWith(t, worker.Config{ID: id}, s)
}

// workerWith is f's worker with cfg's ID and delivery policy.
func (f *fixture) workerWith(t *testing.T, cfg worker.Config, s sender.Sender) *worker.Worker {
	cfg.Queue, cfg.ChunkSize, cfg.LeaseTTL = f.env.Queue, chunk, time.Minute
	return worker.New(cfg, f.env.Redis, f.index, f.acks, s, f.clock, testenv.Logger(t))
}

func (f *fixture) payload(attempt int) queue.Payload {
	return queue.Payload{
		Message:    message.Message{Occurrence: 9001, ReminderID: reminderID, Group: target, FireAt: fireAt, ExpiresAt: fireAt.Add(10 * time.Minute), Reminder: "water", Title: "Drink", Body: "Water now", Location: "Lisbon", Zone: "Europe/Lisbon"},
		LocationID: locationID,
		Layout:     groups,
		Attempt:    attempt,
	}
}

var group = ack.Group{Occurrence: 9001, Group: target}

// claim looks at the group's run as a later attempt would.
func (f *fixture) claim(t *testing.T) ack.Claim {
	t.Helper()
	c, err := f.acks.Start(context.Background(), ack.Lease{Group: group, Attempt: 99, Worker: "probe", Token: "probe-token"}, time.Minute, f.clock.Now())
	require.NoError(t, err)
	return c
}

// stream returns the types of the acks written so far.
func (f *fixture) stream(t *testing.T) []string {
	t.Helper()
	msgs, err := f.env.Redis.XRange(context.Background(), f.acks.StreamKey(group), "-", "+").Result()
	require.NoError(t, err)
	var out []string
	for _, m := range msgs {
		out = append(out, m.Values["t"].(string))
	}
	return out
}

func requireChunks(t *testing.T, batches []sender.Batch, want []string) {
	t.Helper()
	var got []string
	for i, b := range batches {
		require.NotEmpty(t, b.Users)
		if i < len(batches)-1 {
			require.Len(t, b.Users, chunk, "batch %d", i)
		} else {
			require.LessOrEqual(t, len(b.Users), chunk)
		}
		require.Equal(t, "9001-2-"+b.Users[0], b.IdempotencyKey)
		got = append(got, b.Users...)
	}
	require.Equal(t, want, got, "every member once, in sorted order")
}

func TestHandleDeliversGroupOnce(t *testing.T) {
	f := setup(t, 300)
	require.Greater(t, len(f.members), 3*chunk)
	require.NotZero(t, len(f.members)%chunk, "the last chunk is a short one")
	ctx := context.Background()
	var rec recorder
	w := f.worker(t, "w1", &rec)

	require.NoError(t, w.Handle(ctx, f.payload(1)))
	batches, _ := rec.sent()
	require.Len(t, batches, (len(f.members)+chunk-1)/chunk)
	requireChunks(t, batches, f.members)
	b := batches[0]
	require.Equal(t, sender.Batch{
		Message:        message.Message{Occurrence: 9001, Reminder: "water", ReminderID: reminderID, Title: "Drink", Body: "Water now", Location: "Lisbon", Zone: "Europe/Lisbon", FireAt: fireAt, ExpiresAt: fireAt.Add(10 * time.Minute), Group: target},
		Users:          b.Users,
		IdempotencyKey: b.IdempotencyKey,
	}, b)

	require.Equal(t, []string{"start", "finish"}, f.stream(t))
	require.Equal(t, ack.Claim{State: ack.StateFinished, Sent: len(f.members)}, f.claim(t))

	// Another copy of the task finds the group done and sends nothing.
	require.NoError(t, f.worker(t, "w2", &rec).Handle(ctx, f.payload(2)))
	again, _ := rec.sent()
	require.Len(t, again, len(batches))
	// Both the probe above and this copy re-sent the finish ack.
	require.Equal(t, []string{"start", "finish", "finish", "finish"}, f.stream(t))
}

func TestHandleCountsRefusedUsers(t *testing.T) {
	f := setup(t, 200)
	rec := recorder{before: func(n int, b *sender.Batch) (sender.Result, error) {
		if n%2 == 0 {
			return sender.Result{Failed: 3}, nil
		}
		return sender.Result{}, nil
	}}
	require.NoError(t, f.worker(t, "w1", &rec).Handle(context.Background(), f.payload(1)))
	batches, users := rec.sent()
	require.Equal(t, f.members, users)
	failed := 3 * (len(batches) / 2)
	require.Equal(t, ack.Claim{State: ack.StateFinished, Sent: len(f.members) - failed, Failed: failed}, f.claim(t))
}

// A channel that reports some refused users as expired (held back past the
// validity window, as the push channel's rate limit does) gets them counted
// as expired, not failed, in the checkpoints and the finish.
func TestHandleCountsExpiredUsers(t *testing.T) {
	f := setup(t, 200)
	rec := recorder{before: func(n int, b *sender.Batch) (sender.Result, error) {
		return sender.Result{Failed: 3, Expired: 2}, nil
	}}
	require.NoError(t, f.worker(t, "w1", &rec).Handle(context.Background(), f.payload(1)))
	batches, _ := rec.sent()
	n := len(batches)
	require.Equal(t, ack.Claim{State: ack.StateFinished, Sent: len(f.members) - 3*n, Failed: n, Expired: 2 * n}, f.claim(t))
}

func TestHandleResumesAfterFailure(t *testing.T) {
	f := setup(t, 300)
	require.Greater(t, len(f.members), 4*chunk)
	ctx := context.Background()
	down := errors.New("channel down")
	first := recorder{before: func(n int, b *sender.Batch) (sender.Result, error) {
		if n == 3 {
			return sender.Result{}, down
		}
		return sender.Result{}, nil
	}}
	err := f.worker(t, "w1", &first).Handle(ctx, f.payload(1))
	require.ErrorIs(t, err, down)
	batches, _ := first.sent()
	requireChunks(t, batches, f.members[:2*chunk])
	require.Equal(t, 3, first.calls)
	require.Equal(t, []string{"start", "release"}, f.stream(t))

	// The retry does not wait for the (minute-long) lease and starts at the
	// chunk that failed.
	var second recorder
	require.NoError(t, f.worker(t, "w2", &second).Handle(ctx, f.payload(2)))
	batches, _ = second.sent()
	requireChunks(t, batches, f.members[2*chunk:])
	require.Equal(t, []string{"start", "release", "start", "finish"}, f.stream(t))
	require.Equal(t, ack.Claim{State: ack.StateFinished, Sent: len(f.members)}, f.claim(t))
}

// Compact string IDs: UUIDs in both cases, other strings and integers in
// one group. Injected: the channel fails on the third send, then the task
// comes back through the queue to another worker. Checked: every member is
// sent exactly once, with its original ID, in sorted order across the two
// attempts.
func TestHandleCompactStringIDsOnceAcrossRetries(t *testing.T) {
	id := func(i int) string {
		switch i % 4 {
		case 0:
			return fmt.Sprintf("%08x-%04x-4abc-9def-%012x", i*2654435761%(1<<32), i, i*7919)
		case 1:
			return strings.ToUpper(fmt.Sprintf("%08x-%04x-4abc-9def-%012x", i*40503%(1<<32), i, i*104729))
		case 2:
			return "usér-" + strconv.Itoa(i)
		}
		return strconv.Itoa(i)
	}
	f := setupIDs(t, 400, id)
	require.Greater(t, len(f.members), 4*chunk)
	ctx := context.Background()
	down := errors.New("channel down")
	first := recorder{before: func(n int, b *sender.Batch) (sender.Result, error) {
		if n == 3 {
			return sender.Result{}, down
		}
		return sender.Result{}, nil
	}}
	require.ErrorIs(t, f.worker(t, "w1", &first).Handle(ctx, f.payload(1)), down)

	enq := queue.NewEnqueuer(asynq.NewClientFromRedisClient(f.env.Redis), f.env.Queue)
	require.NoError(t, enq.Enqueue(ctx, queue.Single([]queue.Payload{f.payload(2)})))
	var second recorder
	w := f.worker(t, "w2", &second)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(rctx) }()
	testenv.WaitUntil(t, 10*time.Second, "the requeued task to finish the group", func() bool {
		return slices.Contains(f.stream(t), "finish")
	})
	stop()
	require.NoError(t, <-done)

	_, a := first.sent()
	_, b := second.sent()
	require.Equal(t, f.members, append(a, b...), "every member once, as registered, in sorted order")
	require.Equal(t, ack.Claim{State: ack.StateFinished, Sent: len(f.members)}, f.claim(t))
}

func TestHandleResumesAfterCrash(t *testing.T) {
	f := setup(t, 300)
	ctx := context.Background()
	// A worker sent three chunks and died without releasing; its lease ran
	// out. Its checkpoint is the last user of the third chunk.
	_, err := f.acks.Start(ctx, ack.Lease{Group: group, Attempt: 1, Worker: "dead", Token: "dead-token"}, time.Minute, f.clock.Now())
	require.NoError(t, err)
	require.NoError(t, f.acks.Checkpoint(ctx, ack.Lease{Group: group, Token: "dead-token"}, f.members[3*chunk-1], 3*chunk, 0, 0, ack.Skips{}, time.Millisecond))

	// Copies of the task are refused until the lease has run out, as asynq
	// retries them.
	var rec recorder
	w := f.worker(t, "w2", &rec)
	testenv.WaitUntil(t, 5*time.Second, "the dead worker's lease to expire", func() bool {
		return w.Handle(ctx, f.payload(2)) == nil
	})
	batches, _ := rec.sent()
	requireChunks(t, batches, f.members[3*chunk:])
	require.Equal(t, ack.Claim{State: ack.StateFinished, Sent: len(f.members)}, f.claim(t))
}

func TestHandleExpired(t *testing.T) {
	f := setup(t, 100)
	var rec recorder
	p := f.payload(1)
	p.ExpiresAt = f.clock.Now().Add(-time.Second)
	require.NoError(t, f.worker(t, "w1", &rec).Handle(context.Background(), p))
	require.Zero(t, rec.calls)
	require.Equal(t, []string{"start", "finish"}, f.stream(t))
	msgs, err := f.env.Redis.XRange(context.Background(), f.acks.StreamKey(group), "-", "+").Result()
	require.NoError(t, err)
	require.Equal(t, ack.StateExpired, msgs[1].Values["s"])
	require.Equal(t, ack.Claim{State: ack.StateExpired, Expired: len(f.members)}, f.claim(t))
}

func TestHandleExpiresMidGroup(t *testing.T) {
	f := setup(t, 300)
	p := f.payload(1)
	// The window closes while the second chunk is on its way.
	rec := recorder{before: func(n int, b *sender.Batch) (sender.Result, error) {
		if n == 2 {
			f.clock.Set(p.ExpiresAt.Add(time.Millisecond))
		}
		return sender.Result{}, nil
	}}
	require.NoError(t, f.worker(t, "w1", &rec).Handle(context.Background(), p))
	batches, _ := rec.sent()
	requireChunks(t, batches, f.members[:2*chunk])
	require.Equal(t, ack.Claim{State: ack.StateExpired, Sent: 2 * chunk, Expired: len(f.members) - 2*chunk}, f.claim(t))
}

func TestHandleHeld(t *testing.T) {
	f := setup(t, 100)
	ctx := context.Background()
	_, err := f.acks.Start(ctx, ack.Lease{Group: group, Attempt: 1, Worker: "other", Token: "other-token"}, time.Minute, f.clock.Now())
	require.NoError(t, err)

	var rec recorder
	require.Error(t, f.worker(t, "w1", &rec).Handle(ctx, f.payload(2)))
	require.Zero(t, rec.calls)
	// The holder keeps its lease: the refused worker neither took nor
	// released it.
	require.NoError(t, f.acks.Checkpoint(ctx, ack.Lease{Group: group, Token: "other-token"}, "", 0, 0, 0, ack.Skips{}, time.Minute))
	require.Equal(t, []string{"start"}, f.stream(t))
}

func TestHandleRebuildsMissingIndex(t *testing.T) {
	f := setup(t, 200)
	ctx := context.Background()
	loc := grouping.Loc{Reminder: reminderID, Location: locationID}
	require.NoError(t, f.index.EnsureBuilt(ctx, loc))

	// A subscription committed to MySQL, then Redis loses the index.
	late := "late-user"
	for grouping.Of(late, groups) != target {
		late += "x"
	}
	require.NoError(t, f.env.DB.Create(&store.Subscription{ReminderID: reminderID, LocationID: locationID, UserID: late, GroupNo: grouping.Bucket(late)}).Error)
	require.NoError(t, f.index.Drop(ctx, loc))
	_, err := f.index.Members(ctx, loc, groups, target)
	require.ErrorIs(t, err, grouping.ErrNotBuilt)

	var rec recorder
	require.NoError(t, f.worker(t, "w1", &rec).Handle(ctx, f.payload(1)))
	want := slices.Sorted(slices.Values(append(slices.Clone(f.members), late)))
	batches, _ := rec.sent()
	requireChunks(t, batches, want)

	// The index is back for the other groups.
	m, err := f.index.Members(ctx, loc, groups, (target+1)%groups)
	require.NoError(t, err)
	require.NotEmpty(t, m)
}

func TestHandleEmptyGroup(t *testing.T) {
	f := setup(t, 0)
	var rec recorder
	require.NoError(t, f.worker(t, "w1", &rec).Handle(context.Background(), f.payload(1)))
	require.Zero(t, rec.calls)
	require.Equal(t, ack.Claim{State: ack.StateFinished}, f.claim(t))
}

func TestHandleWebhook(t *testing.T) {
	f := setup(t, 400)
	s := sink.New()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	wh, err := webhook.New(webhook.Config{URL: srv.URL, Now: f.clock.Now}, testenv.Logger(t))
	require.NoError(t, err)

	require.NoError(t, f.worker(t, "w1", wh).Handle(context.Background(), f.payload(1)))
	st := s.Stats()
	require.Equal(t, len(f.members), st.Users)
	require.Zero(t, st.Duplicates)
	require.Equal(t, (len(f.members)+chunk-1)/chunk, st.Requests)
	require.Equal(t, map[string]int{"Lisbon": len(f.members)}, st.ByLocation)
	for _, u := range f.members {
		require.Equal(t, 1, s.Count(u), "user %s", u)
	}
	require.Zero(t, s.Count("other-reminder"))
	require.Zero(t, s.Count("other-location"))
}

// blocking is a sender whose first Send waits until released or cancelled.
type blocking struct {
	recorder
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *blocking) Send(ctx context.Context, batch *sender.Batch) (sender.Result, error) {
	first := false
	b.once.Do(func() { first = true })
	if first {
		close(b.entered)
		select {
		case <-b.release:
		case <-ctx.Done():
			return sender.Result{}, ctx.Err()
		}
	}
	return b.recorder.Send(ctx, batch)
}

// A send slower than the lease does not lose the group: the worker renews
// the lease while the send is in flight, so no second worker can take it.
func TestSlowSendKeepsTheLease(t *testing.T) {
	f := setup(t, 2000)
	s := &blocking{entered: make(chan struct{}), release: make(chan struct{})}
	w := worker.New(worker.Config{ID: "slow", Queue: f.env.Queue, ChunkSize: chunk, LeaseTTL: 600 * time.Millisecond},
		f.env.Redis, f.index, f.acks, s, f.clock, testenv.Logger(t))
	done := make(chan error, 1)
	go func() { done <- w.Handle(context.Background(), f.payload(1)) }()
	<-s.entered
	// Let more than the lease's real lifetime pass, renewing on the
	// worker's (fake) clock every third of it.
	for range 6 {
		f.clock.Advance(200 * time.Millisecond)
		time.Sleep(150 * time.Millisecond)
	}
	_, err := f.acks.Start(context.Background(), ack.Lease{Group: group, Attempt: 2, Worker: "rival", Token: "rival-token"}, time.Minute, f.clock.Now())
	require.ErrorIs(t, err, ack.ErrHeld, "the lease lapsed during a slow send")
	close(s.release)
	require.NoError(t, <-done)
	_, users := s.sent()
	require.Equal(t, f.members, users, "every member exactly once")
}

// If the lease is lost while a send is in flight (another worker took the
// group over), the send is cancelled and the worker stops without recording
// anything more for the group.
func TestLostLeaseCancelsTheSend(t *testing.T) {
	f := setup(t, 2000)
	s := &blocking{entered: make(chan struct{}), release: make(chan struct{})}
	w := worker.New(worker.Config{ID: "old", Queue: f.env.Queue, ChunkSize: chunk, LeaseTTL: time.Minute},
		f.env.Redis, f.index, f.acks, s, f.clock, testenv.Logger(t))
	done := make(chan error, 1)
	go func() { done <- w.Handle(context.Background(), f.payload(1)) }()
	<-s.entered
	// Another worker's token replaces the lease.
	var key string
	iter := f.env.Redis.Scan(context.Background(), 0, f.env.Prefix+"ack:*:lease", 10).Iterator()
	for iter.Next(context.Background()) {
		key = iter.Val()
	}
	require.NotEmpty(t, key)
	require.NoError(t, f.env.Redis.Set(context.Background(), key, "new-holder", time.Minute).Err())
	testenv.WaitUntil(t, 5*time.Second, "the worker to notice", func() bool {
		f.clock.Advance(30 * time.Second)
		select {
		case err := <-done:
			require.NoError(t, err)
			return true
		default:
			return false
		}
	})
	batches, _ := s.sent()
	require.Empty(t, batches, "nothing recorded as sent after the lease was lost")
	require.Equal(t, "new-holder", f.env.Redis.Get(context.Background(), key).Val(), "the new holder's lease is untouched")
}

// A worker stopped (its Run context cancelled, as on SIGTERM) while a chunk
// is on its way lets that chunk finish, records its checkpoint, releases the
// group and returns; the task goes back to the queue at once, and another
// worker delivers the rest from the checkpoint. Every member exactly once.
func TestStoppingWorkerReleasesAtTheChunkBoundary(t *testing.T) {
	f := setup(t, 300)
	require.Greater(t, len(f.members), 2*chunk)
	enq := queue.NewEnqueuer(asynq.NewClientFromRedisClient(f.env.Redis), f.env.Queue)
	require.NoError(t, enq.Enqueue(context.Background(), queue.Single([]queue.Payload{f.payload(1)})))

	first := &blocking{entered: make(chan struct{}), release: make(chan struct{})}
	var logs testenv.Output
	stopping := worker.New(worker.Config{ID: "stopping", Queue: f.env.Queue, ChunkSize: chunk, LeaseTTL: time.Minute},
		f.env.Redis, f.index, f.acks, first, f.clock, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- stopping.Run(ctx) }()
	<-first.entered // the first chunk is on its way
	stop()
	testenv.WaitUntil(t, 5*time.Second, "the worker to start stopping", func() bool {
		return strings.Contains(logs.String(), "worker stopping")
	})
	close(first.release)
	require.NoError(t, <-stopped)

	batches, users := first.sent()
	require.Len(t, batches, 1, "the chunk in hand, and no other")
	require.Equal(t, f.members[:chunk], users)
	require.Equal(t, []string{"start", "release"}, f.stream(t))

	var rest recorder
	other := f.worker(t, "other", &rest)
	octx, ostop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- other.Run(octx) }()
	testenv.WaitUntil(t, 10*time.Second, "the other worker to finish the group", func() bool {
		return slices.Contains(f.stream(t), "finish")
	})
	ostop()
	require.NoError(t, <-done)
	_, more := rest.sent()
	require.Equal(t, f.members[chunk:], more, "the rest, from the checkpoint")
	require.Equal(t, ack.Claim{State: ack.StateFinished, Sent: len(f.members)}, f.claim(t))
}

// pausing is the worker's clock, which freezes the worker on the first
// reading after arm: the worker reads its clock at the top of each chunk
// (the validity window), so armed during a send it stops the worker between
// that chunk's checkpoint and the next send, as a SIGSTOP, a long GC pause
// or a frozen VM would. Its renewals stop too: the fake clock does not move.
type pausing struct {
	*clock.Fake
	armed   atomic.Bool
	paused  chan struct{} // closed when the worker is frozen
	resumed chan struct{} // closed by the test to let it go on
}

func (c *pausing) Now() time.Time {
	if c.armed.CompareAndSwap(true, false) {
		close(c.paused)
		<-c.resumed
	}
	return c.Fake.Now()
}

// groupKey returns the key of the target group's run hash plus suffix.
func (f *fixture) groupKey(t *testing.T, suffix string) string {
	t.Helper()
	keys, err := f.env.Redis.Keys(context.Background(), f.env.Prefix+"ack:*:run:9001:"+strconv.Itoa(target)).Result()
	require.NoError(t, err)
	require.Len(t, keys, 1)
	return keys[0] + suffix
}

// Fault: a worker freezes between the checkpoint of its second chunk and
// the send of the third (injected: its clock blocks on the reading that
// follows the checkpoint, and nothing renews its lease meanwhile). Its
// lease, 400ms, really expires in Redis; a second worker takes the group
// over, resumes at the checkpoint and finishes it; then the first worker
// resumes. Checked: the frozen worker sends nothing more (before, it sent
// its third chunk to users the second worker had already delivered), it
// returns without error, and every member is delivered exactly once.
func TestPausedWorkerSendsNothingAfterItsLease(t *testing.T) {
	f := setup(t, 300)
	require.Greater(t, len(f.members), 4*chunk)
	ctx := context.Background()
	clk := &pausing{Fake: f.clock, paused: make(chan struct{}), resumed: make(chan struct{})}
	frozen := recorder{before: func(n int, b *sender.Batch) (sender.Result, error) {
		if n == 2 {
			clk.armed.Store(true)
		}
		return sender.Result{}, nil
	}}
	w := worker.New(worker.Config{ID: "frozen", Queue: f.env.Queue, ChunkSize: chunk, LeaseTTL: 400 * time.Millisecond},
		f.env.Redis, f.index, f.acks, &frozen, clk, testenv.Logger(t))
	done := make(chan error, 1)
	go func() { done <- w.Handle(ctx, f.payload(1)) }()

	<-clk.paused
	cp, err := f.env.Redis.HGet(ctx, f.groupKey(t, ""), "cp").Result()
	require.NoError(t, err)
	require.Equal(t, f.members[2*chunk-1], cp, "frozen after the second chunk's checkpoint")
	lease := f.groupKey(t, ":lease")
	testenv.WaitUntil(t, 5*time.Second, "the frozen worker's lease to expire in Redis", func() bool {
		return f.env.Redis.Exists(ctx, lease).Val() == 0
	})
	var rival recorder
	require.NoError(t, f.worker(t, "rival", &rival).Handle(ctx, f.payload(2)))
	_, rest := rival.sent()
	require.Equal(t, f.members[2*chunk:], rest, "the second worker resumed at the checkpoint")

	close(clk.resumed)
	require.NoError(t, <-done)
	batches, _ := frozen.sent()
	requireChunks(t, batches, f.members[:2*chunk])
	require.Equal(t, ack.Claim{State: ack.StateFinished, Sent: len(f.members)}, f.claim(t))
}

// Injected: the group's packed string of string IDs cut short in Redis
// after the index was built, so the members read of the task's first
// round trip fails (and sends the location to a rebuild). Checked: the
// group reads again on its own, rebuilds the location from MySQL and
// delivers every member once in the same attempt, instead of releasing
// the group for a retry.
func TestDamagedMembersReadAgainAndRebuilt(t *testing.T) {
	f := setupIDs(t, 300, func(i int) string { return fmt.Sprintf("user-%04d-x", i) })
	ctx := context.Background()
	loc := grouping.Loc{Reminder: reminderID, Location: locationID}
	require.NoError(t, f.index.EnsureBuilt(ctx, loc))
	keys, err := f.env.Redis.Keys(ctx, f.env.Prefix+"*:p:"+strconv.Itoa(target)).Result()
	require.NoError(t, err)
	require.Len(t, keys, 1)
	require.NoError(t, f.env.Redis.SetRange(ctx, keys[0], 0, "\xc8").Err()) // a header past the longest ID
	var rec recorder
	require.NoError(t, f.worker(t, "w1", &rec).Handle(ctx, f.payload(1)))
	_, users := rec.sent()
	require.Equal(t, f.members, users, "every member once, in order")
	require.Equal(t, ack.StateFinished, f.claim(t).State)
}
