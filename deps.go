package chime

import (
	"context"
	"errors"
	"log/slog"

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
	cfg, err := LoadConfig(environ)
	if err != nil {
		return nil, err
	}
	if cfg.RedisURL == "" || cfg.MySQLDSN == "" {
		return nil, errors.New("REDIS_URL and MYSQL_DSN are required " + why)
	}
	log, err := cfg.Logger()
	if err != nil {
		return nil, err
	}
	db, err := store.Open(cfg.MySQLDSN, log)
	if err != nil {
		return nil, err
	}
	rdb, err := OpenRedis(ctx, cfg.RedisURL)
	if err != nil {
		return nil, err
	}
	return &Deps{Config: cfg, Log: log, DB: db, Redis: rdb}, nil
}

// Close closes the connections.
func (d *Deps) Close() {
	d.Redis.Close()
	if s, err := d.DB.DB(); err == nil {
		s.Close()
	}
}

// RunWithProbes runs part until ctx is cancelled, with /livez, /readyz
// (checking MySQL and Redis) and /metrics served beside it on
// Config.MetricsAddr, for the processes without an API. Either one failing
// stops the other and its error is returned.
func (d *Deps) RunWithProbes(ctx context.Context, part interface{ Run(context.Context) error }) error {
	probes := &health.Server{Addr: d.Config.MetricsAddr, Checks: health.Stores(d.DB, d.Redis), Log: d.Log}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return probes.Run(ctx) })
	g.Go(func() error { return part.Run(ctx) })
	return g.Wait()
}
