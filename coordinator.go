package chime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/ack"
	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/apikey"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/console"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/leader"
	"github.com/chime-dev/chime/metrics"
	"github.com/chime-dev/chime/policy"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/scheduler"
	"github.com/chime-dev/chime/token"
)

// Coordinator serves the API and, while it is the elected leader, runs the
// scheduler.
type Coordinator struct {
	cfg       Config
	api       *api.API
	console   *console.Console
	keys      *apikey.Resolver
	scheduler *scheduler.Scheduler
	elector   *leader.Elector
	log       *slog.Logger
	listener  net.Listener
	// probe closes the pool /readyz pings MySQL with.
	probe func()
}

// NewCoordinator assembles a coordinator. If ln is nil it listens on
// cfg.HTTPAddr when run. Its /readyz pings MySQL over a pool of its own,
// closed when Run returns.
func NewCoordinator(cfg Config, db *gorm.DB, rdb redis.UniversalClient, clk clock.Clock, log *slog.Logger, ln net.Listener) *Coordinator {
	log = log.With("component", "coordinator", "replica", cfg.ReplicaID)
	index := grouping.NewIndex(rdb, db, cfg.Prefix)
	index.GroupSize = cfg.GroupSize
	changes := cfg.Prefix + "changes"
	enq := queue.NewEnqueuer(asynq.NewClientFromRedisClient(rdb), cfg.Queue)
	enq.Queues = queue.Names(cfg.Queue, cfg.Queues)
	metrics.RegisterQueues(asynq.NewInspectorFromRedisClient(rdb))
	sched := scheduler.New(scheduler.Config{
		Horizon: cfg.Horizon, MaxCatchUp: cfg.MaxCatchUp, PlanInterval: cfg.PlanInterval, PrepareLead: cfg.PrepareLead,
		AckTimeout: cfg.AckTimeout, QueueTimeout: cfg.QueueTimeout, ChangesChannel: changes,
	}, db, rdb, index, enq, ack.NewReader(ack.NewTracker(rdb, cfg.Prefix)), clk, log.With("part", "scheduler"))
	ready, closeProbe := readiness(db, rdb, log)
	keys := apikey.New(apikey.Config{Channel: cfg.KeysChannel(), Now: clk.Now}, db, rdb, log.With("part", "keys"))
	acfg := cfg.withBulk(api.Config{
		ChangesChannel: changes, Now: clk.Now, Content: cfg.Processors(), Ready: ready, Keys: keys, OperatorKey: cfg.OperatorKey,
		ReadTimeout: cfg.HTTPReadTimeout, WriteTimeout: cfg.HTTPWriteTimeout, IdleTimeout: cfg.HTTPIdleTimeout, MaxHeaderBytes: cfg.HTTPMaxHeaderBytes,
		WebDeviceGuard: cfg.Push.guard(), Keyring: cfg.Keyring(),
		Opens: cfg.Opens(rdb, db, clk, log),
	})
	a := api.New(cfg.withOnline(acfg, db, rdb, log), db, rdb, index, log.With("part", "api"))
	return &Coordinator{
		cfg:       cfg,
		probe:     closeProbe,
		api:       a,
		console:   console.New(console.Config{Prefix: cfg.Prefix, Now: clk.Now}, db, rdb, a, log.With("part", "console")),
		keys:      keys,
		scheduler: sched,
		elector:   leader.New(leader.Config{Key: cfg.Prefix + "leader", ID: cfg.ReplicaID, TTL: cfg.LeaderTTL}, rdb, log),
		log:       log,
		listener:  ln,
	}
}

// Handler returns the coordinator's HTTP API, with the console at
// /console.
func (c *Coordinator) Handler() http.Handler {
	mux := http.NewServeMux()
	pages := c.console.Handler()
	mux.Handle(console.Path+"/", pages)
	mux.Handle(console.Path, pages)
	mux.Handle("/", c.api.Handler())
	return mux
}

// Run serves until ctx is cancelled.
func (c *Coordinator) Run(ctx context.Context) error {
	ln := c.listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", c.cfg.HTTPAddr); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	defer c.probe()
	srv := c.api.Server()
	srv.Handler = c.Handler()
	srv.RegisterOnShutdown(c.console.EndStreams) // Shutdown waits for handlers, and a live stream lasts minutes
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.keys.Run(ctx) })
	g.Go(func() error {
		c.log.Info("api listening", "addr", ln.Addr().String())
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), c.cfg.ShutdownTimeout)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	g.Go(func() error {
		return c.elector.Run(ctx, func(ctx context.Context) error {
			metrics.Leading(true)
			defer metrics.Leading(false)
			return c.scheduler.Run(ctx)
		})
	})
	return g.Wait()
}

// withBulk gives the API the limits of bulk requests and uploads.
func (c Config) withBulk(ac api.Config) api.Config {
	ac.BulkPerApp, ac.BulkTotal, ac.MaxTimetable = c.BulkPerApp, c.BulkTotal, c.MaxTimetable
	return ac
}

// withOnline gives the API the inbox, announcement, status and signing key
// stores.
func (c Config) withOnline(ac api.Config, db *gorm.DB, rdb redis.UniversalClient, log *slog.Logger) api.Config {
	ac.Inbox, ac.Status, ac.SigningKeys = c.Inbox(rdb), c.Status(rdb, db), c.SigningKeys(db, rdb, log.With("part", "signing"))
	ac.Announcements = inbox.NewAnnouncements(inbox.AnnouncementConfig{Prefix: c.Prefix}, rdb)
	ac.Policy = policy.New(policy.Config{Prefix: c.Prefix}, rdb, db)
	ac.TokenTTL = min(api.DefaultTokenTTL, cmp.Or(c.Online.TokenMaxLifetime, token.DefaultMaxLifetime))
	return ac
}
