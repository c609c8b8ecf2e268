package chime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
	"golang.org/x/sync/errgroup"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/health"
	"github.com/chime-dev/chime/store"
)

// Deps is what a Chime process opens at start: its configuration, logger,
// database and Redis.
type Deps struct {
	Config Config
	Log    *slog.Logger
	DB     *gorm.DB
	Redis  redis.UniversalClient
}

// Open reads the configuration from environ and connects to MySQL and
// Redis, which it requires; why names the process in the error when they are
// not configured. A store that does not answer yet (not listening, Redis
// loading its dataset) is waited for, up to Config.StartTimeout.
func Open(ctx context.Context, environ []string, why string) (*Deps, error) {
	d, err := load(ctx, environ, func(cfg Config) error {
		if cfg.RedisURL == "" || cfg.MySQLDSN == "" {
			return errors.New("REDIS_URL and MYSQL_DSN are required " + why)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if d.Redis, err = d.awaitRedis(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// awaitRedis waits until Redis answers, through a probe client that makes
// one dial per attempt, and returns the process's client. go-redis's own
// lines about failed dials are left out meanwhile (each attempt logs one
// line of its own) and go to the process's log afterwards.
func (d *Deps) awaitRedis(ctx context.Context) (redis.UniversalClient, error) {
	probe, err := newRedis(d.Config.RedisURL, true)
	if err != nil {
		return nil, err
	}
	defer probe.Close()
	redis.SetLogger(&logging.VoidLogger{})
	defer redis.SetLogger(redisLog{d.Log})
	err = await(ctx, d.Log, "redis", d.startTimeout(), redisRetryable, func(ctx context.Context) error {
		return probe.Ping(ctx).Err()
	})
	if err != nil {
		return nil, err
	}
	return newRedis(d.Config.RedisURL, false)
}

// OpenDB is Open for tools that need MySQL only: Redis stays nil.
func OpenDB(ctx context.Context, environ []string) (*Deps, error) {
	return load(ctx, environ, func(cfg Config) error {
		if cfg.MySQLDSN == "" {
			return errors.New("MYSQL_DSN is required")
		}
		return nil
	})
}

// load reads the configuration, checks it and opens the database, once it
// answers.
func load(ctx context.Context, environ []string, check func(Config) error) (*Deps, error) {
	cfg, err := LoadConfig(environ)
	if err != nil {
		return nil, err
	}
	if err := check(cfg); err != nil {
		return nil, err
	}
	log, err := cfg.Logger()
	if err != nil {
		return nil, err
	}
	d := &Deps{Config: cfg, Log: log}
	err = await(ctx, log, "mysql", d.startTimeout(), mysqlRetryable, func(ctx context.Context) error {
		return store.Ping(ctx, cfg.MySQLDSN)
	})
	if err != nil {
		return nil, err
	}
	if d.DB, err = store.Open(cfg.MySQLDSN, log); err != nil {
		return nil, err
	}
	return d, nil
}

// startTimeout is how long Open waits for each store.
func (d *Deps) startTimeout() time.Duration {
	return cmp.Or(d.Config.StartTimeout, DefaultStartTimeout)
}

// Close closes the connections.
func (d *Deps) Close() {
	if d.Redis != nil {
		d.Redis.Close()
	}
	if s, err := d.DB.DB(); err == nil {
		s.Close()
	}
}

// RunWithProbes runs part until ctx is cancelled, with /livez, /readyz
// (checking MySQL and Redis) and /metrics served beside it on
// Config.MetricsAddr, for the processes without an API. Either one failing
// stops the other and its error is returned.
func (d *Deps) RunWithProbes(ctx context.Context, part interface{ Run(context.Context) error }) error {
	checks, closeChecks := readiness(d.DB, d.Redis, d.Log)
	defer closeChecks()
	probes := &health.Server{Addr: d.Config.MetricsAddr, Checks: checks, Log: d.Log}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return probes.Run(ctx) })
	g.Go(func() error { return part.Run(ctx) })
	return g.Wait()
}

// readiness returns the /readyz checks of a process on db and rdb, and what
// closes them. MySQL is pinged over a pool of its own (store.OpenProbe), so
// that requests or deliveries holding every connection of db's pool do not
// make a working process unready.
func readiness(db *gorm.DB, rdb redis.UniversalClient, log *slog.Logger) (map[string]health.Check, func()) {
	probe, err := store.OpenProbe(db)
	if err != nil {
		log.Warn("readiness pings MySQL through the shared pool", "err", err)
	}
	if probe == nil {
		pool, _ := db.DB()
		return health.Stores(pool, rdb), func() {}
	}
	return health.Stores(probe, rdb), func() { probe.Close() }
}

// Logger builds the process logger the configuration asks for.
func (c Config) Logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("configuration: CHIME_LOG_LEVEL: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch c.LogFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("configuration: CHIME_LOG_FORMAT must be text or json, not %q", c.LogFormat)
}
