package chime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/redis/go-redis/v9"
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
// not configured.
func Open(ctx context.Context, environ []string, why string) (*Deps, error) {
	d, err := load(environ, func(cfg Config) error {
		if cfg.RedisURL == "" || cfg.MySQLDSN == "" {
			return errors.New("REDIS_URL and MYSQL_DSN are required " + why)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if d.Redis, err = OpenRedis(ctx, d.Config.RedisURL); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// OpenDB is Open for tools that need MySQL only: Redis stays nil.
func OpenDB(environ []string) (*Deps, error) {
	return load(environ, func(cfg Config) error {
		if cfg.MySQLDSN == "" {
			return errors.New("MYSQL_DSN is required")
		}
		return nil
	})
}

// load reads the configuration, checks it and opens the database.
func load(environ []string, check func(Config) error) (*Deps, error) {
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
	db, err := store.Open(cfg.MySQLDSN, log)
	if err != nil {
		return nil, err
	}
	return &Deps{Config: cfg, Log: log, DB: db}, nil
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
