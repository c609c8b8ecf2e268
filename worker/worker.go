// Package worker is the stateless asynq server that delivers groups.
//
// Per group task: take the group's lease and send the start ack (package
// ack), read the group's members in one round trip (package grouping,
// rebuilding the index from MySQL if Redis lost it), sort them, skip those
// an earlier attempt already sent (its checkpoint), send the rest through the
// sender in chunks with a checkpoint after each, and send the finish ack.
// A crash therefore repeats at most the one chunk in flight.
//
// When members cannot be read or the channel fails, the worker releases the
// lease and returns the error, and asynq retries the task after a backoff.
// When another worker holds the group, the task is retried after half a lease
// period: either the holder finishes (and the retry finds the group done) or
// it died and its lease has expired. A group whose validity window has passed
// is finished as expired instead of being sent late.
//
// Right before each send the worker checks that its lease is still good,
// without asking Redis as long as the lease was renewed recently enough (see
// keeper.fresh): a worker paused between two chunks (SIGSTOP, a long GC, a
// frozen VM) may have lost the group to another worker meanwhile, and must
// not send another chunk of it.
package worker

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chime-dev/chime/ack"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/deliveryevent"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/metrics"
	"github.com/chime-dev/chime/policy"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/userzone"
)

// Config configures a worker.
type Config struct {
	// ID names this worker in acks and logs. Defaults to hostname-pid.
	ID string
	// Queue is the asynq queue to pull from. Defaults to queue.DefaultName.
	Queue string
	// Queues is how many queues group tasks spread over (queue.Names of
	// Queue); the worker takes from all of them, with equal weights and no
	// strict priority, so none waits behind another. Defaults to
	// queue.DefaultQueues (1).
	Queues int
	// Concurrency is how many groups are delivered at once. Defaults to
	// DefaultConcurrency (32).
	Concurrency int
	// ChunkSize is how many users go in one send and one checkpoint. Defaults
	// to DefaultChunkSize (500).
	ChunkSize int
	// LeaseTTL is how long a group stays held after its holder last
	// renewed it; holders renew after every chunk and every LeaseTTL/3 while
	// a send is in flight. A holder whose last renewal is more than two
	// thirds of LeaseTTL old (it was paused) asks Redis before its next send
	// whether it still holds the group. Defaults to DefaultLeaseTTL (30s).
	LeaseTTL time.Duration
	// PollInterval is how long an idle worker waits before asking the queue
	// again. Defaults to 20ms.
	PollInterval time.Duration
	// ShutdownTimeout is how long a stopping worker lets the chunks in
	// flight finish before it cancels them. Defaults to
	// DefaultShutdownTimeout (20s).
	ShutdownTimeout time.Duration
	// Channel names the sender in metrics. Defaults to "default".
	Channel string
	// RetryCheckInterval is how often the worker moves tasks due for a retry
	// back to the queue (asynq's DelayedTaskCheckInterval), which bounds how
	// long a group released by a stopping worker waits. Defaults to 1s.
	RetryCheckInterval time.Duration

	// Events records each chunk's outcomes as delivery events (package
	// deliveryevent), after its send; recording is bounded and never fails
	// delivery. Defaults to none.
	Events Events

	// Zones leaves out of a chunk at a user zone's location (package
	// userzone) the users already reminded for its local date in a zone
	// they moved from, in one Redis round trip per chunk; they count as
	// sent. Nil checks nothing.
	Zones ZoneMoves

	// Policy decides each chunk's users before its send (package policy):
	// opted-out, quiet and capped users are left out, held ones recorded
	// for their release. Nil sends every user of a chunk.
	Policy Policy
}

// Events records delivery events.
type Events interface {
	// Wants reports whether app's events are recorded at all: a chunk's
	// events are built only for such apps.
	Wants(app int64) bool
	Chunk(ctx context.Context, c deliveryevent.Chunk)
}

// ZoneMoves tells which users moved from a zone where the local date and
// time that fireAt is in zone had already been delivered.
type ZoneMoves interface {
	Reminded(ctx context.Context, reminder int64, zone string, fireAt time.Time, users []string) (map[string]bool, error)
}

// Defaults of the Config.
const (
	DefaultConcurrency = 32
	// DefaultChunkSize is 500: a chunk's costs (its policy decision,
	// checkpoint and send) are paid per chunk, so a fire of a million
	// takes 2,000 of them rather than 10,000 at 100, and a crash repeats at
	// most 500 users, each send carrying the chunk's idempotency key.
	DefaultChunkSize       = 500
	DefaultLeaseTTL        = 30 * time.Second
	DefaultShutdownTimeout = 20 * time.Second
)

func (c *Config) defaults() {
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = host + "-" + strconv.Itoa(os.Getpid())
	}
	if c.Queue == "" {
		c.Queue = queue.DefaultName
	}
	c.Queues = cmp.Or(c.Queues, queue.DefaultQueues)
	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	c.ChunkSize = cmp.Or(c.ChunkSize, DefaultChunkSize)
	c.LeaseTTL = cmp.Or(c.LeaseTTL, DefaultLeaseTTL)
	if c.PollInterval == 0 {
		c.PollInterval = 20 * time.Millisecond
	}
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, DefaultShutdownTimeout)
	if c.Channel == "" {
		c.Channel = "default"
	}
	if c.RetryCheckInterval == 0 {
		c.RetryCheckInterval = time.Second
	}
}

// Worker delivers group tasks.
type Worker struct {
	cfg    Config
	rdb    redis.UniversalClient
	index  *grouping.Index
	acks   *ack.Tracker
	sender sender.Sender
	clock  clock.Clock
	log    *slog.Logger

	draining chan struct{}  // closed when Run's context is done
	inflight sync.WaitGroup // tasks under way (deliver)
}

// Policy decides which users of a chunk are sent (package policy): one
// call per chunk, before its send, and the users it holds for their quiet
// hours recorded before the chunk's checkpoint.
type Policy interface {
	// ReadState queues on pipe the read of m's app's preference state
	// DecideWith takes (nil if it needs none), so that it rides on the
	// round trip before the chunk: its start ack or the previous
	// checkpoint.
	ReadState(ctx context.Context, pipe redis.Pipeliner, m message.Message, now time.Time) *policy.StateRead
	DecideWith(ctx context.Context, m message.Message, users []string, now time.Time, read *policy.StateRead) (policy.Decision, error)
	Hold(ctx context.Context, occurrence int64, chunk string, d policy.Decision) error
}

var _ Policy = (*policy.Policy)(nil)

// New returns a worker. Its Run pulls from the queue; Handle delivers one
// task and can be used on its own.
func New(cfg Config, rdb redis.UniversalClient, index *grouping.Index, acks *ack.Tracker, s sender.Sender, clk clock.Clock, log *slog.Logger) *Worker {
	cfg.defaults()
	return &Worker{cfg: cfg, rdb: rdb, index: index, acks: acks, sender: s, clock: clk, log: log.With("worker", cfg.ID),
		draining: make(chan struct{})}
}

// ID returns the worker's name.
func (w *Worker) ID() string { return w.cfg.ID }

var (
	// errHeld marks a task retried because another worker holds its group.
	errHeld = errors.New("group held by another worker")
	// errDrained marks a task handed back by a stopping worker.
	errDrained = errors.New("worker stopping; group released")
)

// Run serves the queue until ctx is cancelled. Then it takes no new task,
// lets each group in hand finish the chunk it is sending and release the
// group (sends still going after ShutdownTimeout are cancelled), and
// returns once every group in hand is released or finished.
func (w *Worker) Run(ctx context.Context) error {
	queues := map[string]int{}
	for _, q := range queue.Names(w.cfg.Queue, w.cfg.Queues) {
		queues[q] = 1
	}
	srv := asynq.NewServerFromRedisClient(w.rdb, asynq.Config{
		Concurrency:              w.cfg.Concurrency,
		Queues:                   queues,
		StrictPriority:           false,
		TaskCheckInterval:        w.cfg.PollInterval,
		ShutdownTimeout:          w.cfg.ShutdownTimeout,
		RetryDelayFunc:           w.retryDelay,
		DelayedTaskCheckInterval: w.cfg.RetryCheckInterval,
		// A held group, or one a stopping worker gave back, is not a
		// failure of the task.
		IsFailure: func(err error) bool { return !errors.Is(err, errHeld) && !errors.Is(err, errDrained) },
		Logger:    asynqLogger{w.log},
		LogLevel:  asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.Handle(queue.TaskType, w)
	mux.Handle(queue.LegacyTaskType, w)
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	w.log.Info("worker started", "queue", w.cfg.Queue, "queues", len(queues), "concurrency", w.cfg.Concurrency)
	<-ctx.Done()
	close(w.draining)
	w.log.Info("worker stopping: finishing the chunks in hand, releasing their groups")
	srv.Shutdown()
	// asynq stops waiting for handlers after ShutdownTimeout and cancels
	// them; wait for them to release their groups before the process ends.
	w.inflight.Wait()
	return nil
}

func (w *Worker) retryDelay(n int, err error, _ *asynq.Task) time.Duration {
	if errors.Is(err, errHeld) {
		return w.cfg.LeaseTTL / 2
	}
	if errors.Is(err, errDrained) {
		return 0
	}
	// 1s, 2s, 4s ... capped at 30s: long enough for a receiver to recover,
	// short enough to stay inside a validity window.
	return min(time.Second<<min(n, 5), 30*time.Second)
}

// ProcessTask implements asynq.Handler. It delivers the task's groups one
// after the other, each with its own lease, checkpoints and acks. When some
// group could not be finished the task is retried as a whole; the groups
// already finished are found done by the retry and cost it one script call.
func (w *Worker) ProcessTask(ctx context.Context, t *asynq.Task) error {
	task, err := queue.Decode(t.Type(), t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return w.deliver(ctx, task.Parts)
}

// Handle delivers one group.
func (w *Worker) Handle(ctx context.Context, p queue.Payload) error {
	return w.deliver(ctx, []queue.Payload{p})
}

// deliver delivers a task's groups in order. A group's start ack shares
// its round trip with what the group reads first (its app's preference
// state, and in the task's first trip the members of all its groups) and
// with the previous group's finish ack, so a task of n small groups costs
// n+1 round trips of acks and reads instead of three per group.
//
// Reading every group's members in the first trip gives up this: a
// group's members are those of the task's start, not of its own, so a
// user who unsubscribes while the task's earlier groups are delivered (a
// second or so) is still reminded, as one who unsubscribes during a
// group's own delivery always was; and a group found done or held was read
// for nothing. A finish that rides with the next start is sent before
// anything of the next group, so a crash still repeats at most the chunk
// in flight.
func (w *Worker) deliver(ctx context.Context, parts []queue.Payload) error {
	w.inflight.Add(1)
	defer w.inflight.Done()
	var failed, held error
	reads := make([]*grouping.MembersRead, len(parts))
	var closing *finishing
	for i, p := range parts {
		o, err := w.open(ctx, parts, i, reads, closing)
		closing = nil
		if err != nil {
			failed = errors.Join(failed, err)
		}
		closing, err = w.handle(ctx, p, o)
		switch {
		case err == nil:
		case errors.Is(err, errDrained):
			// Stopping: the rest of the task goes back with this group.
			return err
		case errors.Is(err, errHeld):
			held = err
		default:
			failed = errors.Join(failed, err)
		}
	}
	if closing != nil {
		claim, err := w.acks.Finish(ctx, closing.lease, closing.state, closing.final, w.clock.Now())
		if err := w.finished(closing, claim, err); err != nil {
			failed = errors.Join(failed, err)
		}
	}
	// A failure retries with backoff; only held groups retry after half a
	// lease.
	return cmp.Or(failed, held)
}

// finishing is a group's finish ack not sent yet: it goes with the next
// group's start.
type finishing struct {
	lease ack.Lease
	state string
	final ack.Final
	begun time.Time
}

// opening is a group's first round trip: its start ack and the reads that
// rode with it.
type opening struct {
	lease   ack.Lease
	asked   time.Time // when the start was sent
	start   *ack.StartCmd
	members *grouping.MembersRead // nil when the task names the users
	state   *policy.StateRead     // nil: none read ahead
}

// open sends group i's start ack, with closing's finish (the previous
// group's) before it, the members of every group of the task in the first
// trip (into reads) and the preference state of the group's app. It
// returns closing's error.
func (w *Worker) open(ctx context.Context, parts []queue.Payload, i int, reads []*grouping.MembersRead, closing *finishing) (*opening, error) {
	p := parts[i]
	o := &opening{lease: ack.Lease{Group: ack.Group{Occurrence: p.Occurrence, Group: p.Group}, Attempt: p.Attempt,
		Worker: w.cfg.ID, Token: w.cfg.ID + "/" + nonce()}}
	pipe := w.rdb.Pipeline()
	var f *ack.FinishCmd
	if closing != nil {
		f = w.acks.QueueFinish(ctx, pipe, closing.lease, closing.state, closing.final, w.clock.Now())
	}
	o.start = w.acks.QueueStart(ctx, pipe, o.lease, w.cfg.LeaseTTL, w.clock.Now())
	if i == 0 {
		for j, q := range parts {
			if len(q.Users) == 0 {
				reads[j] = w.index.QueueMembers(ctx, pipe, grouping.MembersRequest{
					Loc: grouping.Loc{Reminder: q.ReminderID, Location: q.LocationID}, Layout: q.Layout, Group: q.Group})
			}
		}
	}
	o.members = reads[i]
	if w.cfg.Policy != nil {
		o.state = w.cfg.Policy.ReadState(ctx, pipe, p.Message, w.clock.Now())
	}
	o.asked = time.Now()
	pipe.Exec(ctx) //nolint:errcheck // each command's result is checked by its reader
	if f == nil {
		return o, nil
	}
	claim, err := f.Claim(ctx)
	return o, w.finished(closing, claim, err)
}

// handle delivers one group whose start o sent, and returns its finish
// for the next round trip (nil when there is none to send).
func (w *Worker) handle(ctx context.Context, p queue.Payload, o *opening) (*finishing, error) {
	l := o.lease
	log := w.log.With("occurrence", p.Occurrence, "group", p.Group, "attempt", p.Attempt)
	claim, err := o.start.Claim(ctx)
	if errors.Is(err, ack.ErrHeld) {
		return nil, errHeld
	}
	if err != nil {
		return nil, err
	}
	if claim.Done() {
		log.Debug("group already done", "state", claim.State)
		return nil, nil
	}
	begun := w.clock.Now()
	k := w.keepLease(ctx, l, o.asked)
	defer k.Stop()
	loc := grouping.Loc{Reminder: p.ReminderID, Location: p.LocationID}
	var members []string
	if len(p.Users) > 0 {
		members = slices.Compact(slices.Sorted(slices.Values(p.Users)))
	} else {
		members, err = o.members.Members(k.ctx)
		if err != nil && !errors.Is(err, grouping.ErrNotBuilt) {
			// The read shared with the task's other groups failed (a
			// timeout, a busy Redis): this group reads again on its own
			// before giving up.
			members, err = w.index.Members(k.ctx, loc, p.Layout, p.Group)
		}
	}
	state := o.state
	if errors.Is(err, grouping.ErrNotBuilt) {
		if err = w.index.EnsureBuilt(k.ctx, loc); err == nil {
			members, err = w.index.Members(k.ctx, loc, p.Layout, p.Group)
		}
		// A rebuild can take seconds: the first chunk reads the
		// preference state again rather than use the read of the start.
		state = nil
	}
	if k.lost.Load() {
		log.Warn("lease lost while reading members; another worker continues the group")
		return nil, nil
	}
	if err != nil {
		return nil, w.release(ctx, l, fmt.Errorf("read members: %w", err))
	}
	// Members come sorted in byte order, each once, whatever their encoding
	// in Redis: the checkpoint is a position in that order.
	if claim.Checkpoint != "" {
		// Users up to the checkpoint were sent by an earlier holder.
		i, found := slices.BinarySearch(members, claim.Checkpoint)
		if found {
			i++
		}
		members = members[i:]
	}
	for len(members) > 0 {
		if w.stopping() {
			// Everything sent so far is checkpointed.
			log.Info("worker stopping; group released", "unsent", len(members))
			return nil, w.release(ctx, l, errDrained)
		}
		if w.clock.Now().After(p.ExpiresAt) {
			log.Warn("validity window passed; group expired", "unsent", len(members))
			metrics.GroupExpired(w.cfg.Channel, len(members))
			w.recordExpired(ctx, p, members)
			return &finishing{lease: l, state: ack.StateExpired, final: ack.Final{Expired: len(members)}, begun: begun}, nil
		}
		n := min(w.cfg.ChunkSize, len(members))
		chunk := members[:n]
		b := &sender.Batch{
			Message:        p.Message,
			Users:          chunk,
			IdempotencyKey: fmt.Sprintf("%d-%d-%s", p.Occurrence, p.Group, chunk[0]),
		}
		// The delivery policy: opted-out, quiet and capped users are left
		// out (d.Outcomes names them by outcome type), held ones recorded
		// for their release before the checkpoint passes them.
		var skips ack.Skips
		var left map[string][]string
		if w.cfg.Policy != nil {
			d, err := w.cfg.Policy.DecideWith(k.ctx, p.Message, chunk, w.clock.Now(), state)
			state = nil
			if err == nil {
				err = w.cfg.Policy.Hold(k.ctx, p.Occurrence, b.IdempotencyKey, d)
			}
			if k.lost.Load() {
				// The keeper found the lease taken (and canceled k.ctx,
				// which may be why the decision failed).
				log.Warn("lease lost while deciding a chunk; another worker continues the group", "unsent", len(members))
				return nil, nil
			}
			if err != nil {
				return nil, w.release(ctx, l, fmt.Errorf("delivery policy: %w", err))
			}
			b.Users, b.Exclude, left = d.Send, d.Exclude, d.Outcomes
			skips = ack.Skips{Preference: d.Count(policy.SkippedPreference), Quiet: d.Count(policy.Quiet), Capped: d.Count(policy.Capped)}
		}
		sent := len(b.Users)
		// The last thing before the send: a pause since the checkpoint may
		// have handed the group to another worker.
		err := w.confirmLease(k, l)
		if errors.Is(err, ack.ErrLeaseLost) {
			log.Warn("lease passed before a send (its renewals were missed: the worker was paused, or Redis failed); another worker continues the group", "unsent", len(members))
			return nil, nil
		}
		if err != nil {
			return nil, w.release(ctx, l, err)
		}
		var res sender.Result
		if len(b.Users) > 0 {
			res, err = w.send(k.ctx, b)
		}
		if k.lost.Load() {
			log.Warn("lease lost during a send; another worker continues the group")
			return nil, nil
		}
		if err != nil {
			return nil, w.release(ctx, l, fmt.Errorf("send: %w", err))
		}
		metrics.Delivered(w.cfg.Channel, sent-res.Failed, res.Failed-res.Expired, res.Expired)
		// Users a zone move left out were reminded already: no event; those
		// the policy left out are events of their own.
		w.recordChunk(ctx, p, b.Users, res, left)
		if n == len(members) {
			// The last chunk is recorded with the finish.
			return &finishing{lease: l, state: ack.StateFinished, final: ack.Final{LastUser: chunk[n-1], Sent: sent - res.Failed,
				Failed: res.Failed - res.Expired, Expired: res.Expired, Skips: skips}, begun: begun}, nil
		}
		// The next chunk's preference state rides with the checkpoint.
		pipe := w.rdb.Pipeline()
		cp := w.acks.QueueCheckpoint(ctx, pipe, l, chunk[n-1], sent-res.Failed, res.Failed-res.Expired, res.Expired, skips, w.cfg.LeaseTTL)
		if w.cfg.Policy != nil {
			state = w.cfg.Policy.ReadState(ctx, pipe, p.Message, w.clock.Now())
		}
		asked := time.Now()
		pipe.Exec(ctx) //nolint:errcheck // the checkpoint's own result is checked
		err = cp.Err(ctx)
		if errors.Is(err, ack.ErrLeaseLost) {
			log.Warn("lease lost mid-group; another worker continues it")
			return nil, nil
		}
		if err != nil {
			return nil, w.release(ctx, l, err)
		}
		k.extend(asked)
		members = members[n:]
	}
	return &finishing{lease: l, state: ack.StateFinished, final: ack.Final{}, begun: begun}, nil
}

// recordChunk records a chunk's delivery events: the users sent, delivered,
// failed or expired as the send's result names them, and those the
// delivery policy left out (left, by outcome type).
func (w *Worker) recordChunk(ctx context.Context, p queue.Payload, sent []string, res sender.Result, left map[string][]string) {
	if w.cfg.Events == nil || p.App == 0 || !w.cfg.Events.Wants(p.App) {
		return
	}
	out := deliveryevent.Outcomes(sent, res)
	for typ, users := range left {
		out[typ] = append(out[typ], users...)
	}
	w.cfg.Events.Chunk(ctx, w.chunkEvents(p, out))
}

// recordExpired records the users of a group whose validity window passed
// before they were sent, one entry per chunk as if each had been sent.
func (w *Worker) recordExpired(ctx context.Context, p queue.Payload, members []string) {
	if w.cfg.Events == nil || p.App == 0 || !w.cfg.Events.Wants(p.App) {
		return
	}
	for c := range slices.Chunk(members, w.cfg.ChunkSize) {
		w.cfg.Events.Chunk(ctx, w.chunkEvents(p, map[string][]string{deliveryevent.Expired: c}))
	}
}

func (w *Worker) chunkEvents(p queue.Payload, out map[string][]string) deliveryevent.Chunk {
	g := p.Group
	return deliveryevent.Chunk{App: p.App, Reminder: p.Reminder, Occurrence: p.Occurrence, Location: p.Location,
		Group: &g, Attempt: p.Attempt, At: w.clock.Now(), Outcomes: out}
}

// send hands b to the sender, without the users a user zone's move marks
// say were reminded already.
func (w *Worker) send(ctx context.Context, b *sender.Batch) (sender.Result, error) {
	if _, ok := userzone.Zone(b.Location); ok && w.cfg.Zones != nil {
		done, err := w.cfg.Zones.Reminded(ctx, b.ReminderID, b.Zone, b.FireAt, b.Users)
		if err != nil {
			return sender.Result{}, err
		}
		if len(done) > 0 {
			keep := make([]string, 0, len(b.Users)-len(done))
			for _, u := range b.Users {
				if !done[u] {
					keep = append(keep, u)
				}
			}
			b.Users = keep
			if len(keep) == 0 {
				return sender.Result{}, nil
			}
		}
	}
	return w.sender.Send(ctx, b)
}

// keeper renews a group's lease every third of LeaseTTL for as long as its
// holder works on the group: reading members (a rebuild can be slow) and
// every send. If the lease is found taken by another worker, it cancels ctx.
//
// It also keeps the worker's own idea of when the lease runs out: LeaseTTL
// after the last renewal that succeeded was asked for (Redis starts the TTL
// when it runs the command, which is no earlier, so the lease lasts at least
// that long). That instant is on the monotonic clock, not the worker's
// clock: the lease expires on Redis's real time, and a process that was
// stopped or frozen finds its monotonic clock gone past it on resuming.
type keeper struct {
	ctx  context.Context
	stop chan struct{}
	done chan struct{}
	lost atomic.Bool

	ttl   time.Duration
	mu    sync.Mutex
	until time.Time // the lease lasts at least until then, unless lost
}

func (w *Worker) keepLease(ctx context.Context, l ack.Lease, taken time.Time) *keeper {
	kctx, cancel := context.WithCancel(ctx)
	k := &keeper{ctx: kctx, stop: make(chan struct{}), done: make(chan struct{}), ttl: w.cfg.LeaseTTL}
	k.extend(taken)
	go func() {
		defer close(k.done)
		defer cancel()
		for {
			select {
			case <-k.stop:
				return
			case <-kctx.Done():
				return
			case <-w.clock.After(w.cfg.LeaseTTL / 3):
				asked := time.Now()
				err := w.acks.Renew(kctx, l, w.cfg.LeaseTTL)
				if errors.Is(err, ack.ErrLeaseLost) {
					k.lost.Store(true)
					return
				}
				if err == nil {
					k.extend(asked)
				} else if kctx.Err() == nil {
					w.log.Warn("renew lease", "occurrence", l.Group.Occurrence, "group", l.Group.Group, "err", err)
				}
			}
		}
	}()
	return k
}

// Stop ends the renewals.
func (k *keeper) Stop() {
	close(k.stop)
	<-k.done
}

// extend records a renewal (or the start) that succeeded and was asked for
// at asked, a reading of time.Now.
func (k *keeper) extend(asked time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if u := asked.Add(k.ttl); u.After(k.until) {
		k.until = u
	}
}

// fresh reports whether the lease has more than a third of its TTL left.
// Renewals come every third of it, so a lease with less left has missed
// one: the process was paused (or Redis is failing) and the lease may be
// gone. The third left is the margin a send has to get going before the
// lease could expire under it.
func (k *keeper) fresh() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return time.Until(k.until) > k.ttl/3
}

// confirmLease makes sure, right before a send, that the group is still
// this worker's. A fresh lease needs no Redis call; otherwise the lease is
// renewed now, which fails with ack.ErrLeaseLost if it has passed.
func (w *Worker) confirmLease(k *keeper, l ack.Lease) error {
	if k.lost.Load() {
		return ack.ErrLeaseLost
	}
	if k.fresh() {
		return nil
	}
	asked := time.Now()
	err := w.acks.Renew(k.ctx, l, w.cfg.LeaseTTL)
	if errors.Is(err, ack.ErrLeaseLost) {
		k.lost.Store(true)
		return err
	}
	if err != nil {
		return fmt.Errorf("confirm lease: %w", err)
	}
	k.extend(asked)
	return nil
}

// finished checks the result of the finish sent for c: a lease lost
// meanwhile is another worker's group now.
func (w *Worker) finished(c *finishing, claim ack.Claim, err error) error {
	l := c.lease
	if errors.Is(err, ack.ErrLeaseLost) {
		w.log.Warn("lease lost before finish; another worker continues the group", "occurrence", l.Group.Occurrence, "group", l.Group.Group)
		return nil
	}
	if err != nil {
		return fmt.Errorf("occurrence %d group %d: %w", l.Group.Occurrence, l.Group.Group, err)
	}
	metrics.GroupDone(w.clock.Now().Sub(c.begun))
	w.log.Debug("group finished", "occurrence", l.Group.Occurrence, "group", l.Group.Group, "sent", claim.Sent, "failed", claim.Failed, "expired", claim.Expired)
	return nil
}

// release gives the group back for a retry and returns cause.
func (w *Worker) release(ctx context.Context, l ack.Lease, cause error) error {
	reason := "error"
	if errors.Is(cause, errDrained) {
		reason = "stopping"
	}
	metrics.Released(reason)
	err := w.acks.Release(context.WithoutCancel(ctx), l, w.clock.Now())
	if errors.Is(err, ack.ErrLeaseLost) {
		w.log.Warn("lease lost before the group was released; another worker continues the group",
			"occurrence", l.Group.Occurrence, "group", l.Group.Group, "cause", cause)
	} else if err != nil {
		w.log.Warn("release group", "occurrence", l.Group.Occurrence, "group", l.Group.Group, "err", err)
	}
	return cause
}

// stopping reports whether Run is shutting the worker down.
func (w *Worker) stopping() bool {
	select {
	case <-w.draining:
		return true
	default:
		return false
	}
}

func nonce() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// asynqLogger routes asynq's own logs through slog.
type asynqLogger struct{ log *slog.Logger }

func (l asynqLogger) Debug(args ...any) { l.log.Debug(fmt.Sprint(args...)) }
func (l asynqLogger) Info(args ...any)  { l.log.Info(fmt.Sprint(args...)) }
func (l asynqLogger) Warn(args ...any)  { l.log.Warn(fmt.Sprint(args...)) }
func (l asynqLogger) Error(args ...any) { l.log.Error(fmt.Sprint(args...)) }
func (l asynqLogger) Fatal(args ...any) { l.log.Error(fmt.Sprint(args...)) }
