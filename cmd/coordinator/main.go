// Command coordinator serves Chime's HTTP API and, on the replica elected
// leader, plans and fires occurrences, tracks acks and requeues groups whose
// finish ack does not come. Configuration is read from the environment (see
// the README).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Environ())
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "coordinator:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, environ []string) error {
	cfg, err := chime.LoadConfig(environ)
	if err != nil {
		return err
	}
	if cfg.RedisURL == "" || cfg.MySQLDSN == "" {
		return errors.New("REDIS_URL and MYSQL_DSN are required (for a self-contained demo run: make run)")
	}
	log, err := cfg.Logger()
	if err != nil {
		return err
	}
	db, err := store.Open(cfg.MySQLDSN, log)
	if err != nil {
		return err
	}
	if cfg.Migrate {
		if err := store.Migrate(ctx, db); err != nil {
			return err
		}
	}
	rdb, err := chime.OpenRedis(ctx, cfg.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	return chime.NewCoordinator(cfg, db, rdb, clock.Real{}, log, nil).Run(ctx)
}
