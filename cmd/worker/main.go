// Command worker is a stateless asynq server that delivers group tasks:
// start ack, read members, send in chunks with a checkpoint after each,
// finish ack. Run as many as the load needs. Configuration is read from the
// environment (see the README).
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
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, environ []string) error {
	cfg, err := chime.LoadConfig(environ)
	if err != nil {
		return err
	}
	if cfg.RedisURL == "" || cfg.MySQLDSN == "" {
		return errors.New("REDIS_URL and MYSQL_DSN are required (MySQL is read only to rebuild a lost membership index)")
	}
	log, err := cfg.Logger()
	if err != nil {
		return err
	}
	db, err := store.Open(cfg.MySQLDSN, log)
	if err != nil {
		return err
	}
	rdb, err := chime.OpenRedis(ctx, cfg.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	s, err := chime.NewSender(cfg, log)
	if err != nil {
		return err
	}
	return chime.NewWorker(cfg, db, rdb, s, clock.Real{}, log).Run(ctx)
}
