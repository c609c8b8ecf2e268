package scheduler

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/ack"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/queue"
)

// Config configures the scheduler.
type Config struct {
	// Horizon is how far ahead occurrences are planned. Defaults to
	// DefaultHorizon (26h).
	Horizon time.Duration
	// MaxCatchUp bounds how far back the planner looks after an outage:
	// older instants are neither fired nor recorded. Defaults to
	// DefaultMaxCatchUp (7 days).
	MaxCatchUp time.Duration
	// PlanInterval is how often the whole plan is recomputed. Defaults to
	// DefaultPlanInterval (1m).
	PlanInterval time.Duration
	// PrepareLead is how long before an instant the index is made ready.
	// Defaults to DefaultPrepareLead (30s).
	PrepareLead time.Duration
	// AckTimeout is how long a started group may go without a finish ack
	// before it is queued again. Defaults to DefaultAckTimeout (2m).
	AckTimeout time.Duration
	// QueueTimeout is how long a queued group may wait for its start ack
	// before its task is enqueued again (a no-op while the task exists).
	// Defaults to DefaultQueueTimeout (1m).
	QueueTimeout time.Duration
	// ReapInterval is how often the reaper looks. Defaults to AckTimeout/4,
	// at most 10s.
	ReapInterval time.Duration
	// ChangesChannel is the Redis channel API changes are announced on.
	ChangesChannel string
	// FireLead is how long before an instant the firer loads the
	// occurrences due at it and checks their preparations, so that the
	// instant itself costs only the claims and the enqueue. Defaults to
	// DefaultFireLead (250ms), at most PrepareLead; negative loads them at
	// the instant.
	FireLead time.Duration
	// TrackLinger is how long the ack tracker waits for more acks after
	// each read that found some, before it records what it holds: it
	// records a batch once a read after this long finds nothing new.
	// Defaults to DefaultTrackLinger (250ms); negative records at once.
	TrackLinger time.Duration
	// TrackLingerMax bounds how long the tracker holds a batch it keeps
	// finding more acks for, from its first read. Defaults to
	// DefaultTrackLingerMax (2s); at least TrackLinger.
	TrackLingerMax time.Duration
}

// Defaults of the Config.
const (
	DefaultHorizon      = 26 * time.Hour
	DefaultMaxCatchUp   = 7 * 24 * time.Hour
	DefaultPlanInterval = time.Minute
	DefaultPrepareLead  = 30 * time.Second
	DefaultAckTimeout   = 2 * time.Minute
	DefaultQueueTimeout = time.Minute
	DefaultTrackLinger  = 250 * time.Millisecond
	// DefaultTrackLingerMax is 2s: a fire of thousands of small locations
	// is delivered in about a second, and its acks are then recorded after
	// its deliveries instead of among them.
	DefaultTrackLingerMax = 2 * time.Second
	DefaultFireLead       = 250 * time.Millisecond
)

func (c *Config) defaults() {
	c.Horizon = cmp.Or(c.Horizon, DefaultHorizon)
	c.MaxCatchUp = cmp.Or(c.MaxCatchUp, DefaultMaxCatchUp)
	c.PlanInterval = cmp.Or(c.PlanInterval, DefaultPlanInterval)
	c.PrepareLead = cmp.Or(c.PrepareLead, DefaultPrepareLead)
	c.AckTimeout = cmp.Or(c.AckTimeout, DefaultAckTimeout)
	c.QueueTimeout = cmp.Or(c.QueueTimeout, DefaultQueueTimeout)
	c.TrackLinger = cmp.Or(c.TrackLinger, DefaultTrackLinger)
	c.TrackLingerMax = max(cmp.Or(c.TrackLingerMax, DefaultTrackLingerMax), c.TrackLinger)
	// The firer loads what is due within PrepareLead; it cannot wake
	// earlier before an instant than that.
	c.FireLead = min(max(cmp.Or(c.FireLead, DefaultFireLead), 0), c.PrepareLead)
	if c.ReapInterval == 0 {
		c.ReapInterval = min(c.AckTimeout/4, 10*time.Second)
	}
}

// Scheduler is the leader's work. Run it only on the elected replica.
type Scheduler struct {
	cfg      Config
	db       *gorm.DB
	rdb      redis.UniversalClient
	index    *grouping.Index
	enq      *queue.Enqueuer
	acks     *ack.Reader
	clock    clock.Clock
	log      *slog.Logger
	wakePlan chan struct{}
	wakeFire chan struct{}

	mu    sync.Mutex
	ready map[int64]*preparation // occurrence -> its preparation
	// spreading keeps the tasks of spread occurrences fired by this
	// coordinator until their last slot.
	spreading map[int64]*prepared
}

// New returns a scheduler.
func New(cfg Config, db *gorm.DB, rdb redis.UniversalClient, index *grouping.Index, enq *queue.Enqueuer, acks *ack.Reader, clk clock.Clock, log *slog.Logger) *Scheduler {
	cfg.defaults()
	return &Scheduler{
		cfg: cfg, db: db, rdb: rdb, index: index, enq: enq, acks: acks, clock: clk, log: log,
		wakePlan: make(chan struct{}, 1), wakeFire: make(chan struct{}, 1),
		ready: map[int64]*preparation{}, spreading: map[int64]*prepared{},
	}
}

// Run plans, fires, tracks and reaps until ctx is cancelled.
func (s *Scheduler) Run(ctx context.Context) error {
	// Acks read in an earlier term but not recorded are pending on the
	// stream; read them first.
	s.acks.Rewind()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.listen(ctx) })
	g.Go(func() error { return s.runPlanner(ctx) })
	g.Go(func() error { return s.runFirer(ctx) })
	g.Go(func() error { return s.runTracker(ctx) })
	g.Go(func() error { return s.runReaper(ctx) })
	g.Go(func() error { return s.every(ctx, "release quiet holds", s.cfg.ReapInterval, nil, s.ReleaseHolds) })
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Nudge makes the planner recompute now, for example after a reminder
// changed.
func (s *Scheduler) Nudge() { signal(s.wakePlan) }

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// listen nudges the planner on every change announced by an API replica.
func (s *Scheduler) listen(ctx context.Context) error {
	if s.cfg.ChangesChannel == "" {
		return nil
	}
	sub := s.rdb.Subscribe(ctx, s.cfg.ChangesChannel)
	defer sub.Close()
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
			s.Nudge()
		}
	}
}

// every runs fn now and then every interval or when woken, logging failures.
func (s *Scheduler) every(ctx context.Context, name string, interval time.Duration, wake <-chan struct{}, fn func(context.Context) error) error {
	for {
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn(name+" failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-s.clock.After(interval):
		}
	}
}

func (s *Scheduler) runPlanner(ctx context.Context) error {
	return s.every(ctx, "plan", s.cfg.PlanInterval, s.wakePlan, func(ctx context.Context) error {
		if err := s.Plan(ctx); err != nil {
			return err
		}
		signal(s.wakeFire)
		return nil
	})
}

func (s *Scheduler) runReaper(ctx context.Context) error {
	return s.every(ctx, "reap", s.cfg.ReapInterval, nil, s.Reap)
}

func (s *Scheduler) runTracker(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := s.Track(ctx, time.Second); err != nil && ctx.Err() == nil {
			s.log.Warn("track acks failed", "err", err)
			select {
			case <-ctx.Done():
			case <-s.clock.After(time.Second):
			}
		}
	}
	return nil
}

// withTimeout bounds one round of database work.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 30*time.Second)
}
