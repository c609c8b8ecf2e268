// Command coordinator serves Chime's HTTP API and, on the replica elected
// leader, plans and fires occurrences, tracks acks and requeues groups whose
// finish ack does not come. Configuration is read from the environment (see
// the README).
package main

import (
	"context"
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
	d, err := chime.Open(ctx, environ, "(for a self-contained demo run: make run)")
	if err != nil {
		return err
	}
	defer d.Close()
	if d.Config.Migrate {
		if err := store.Migrate(ctx, d.DB); err != nil {
			return err
		}
	}
	return chime.NewCoordinator(d.Config, d.DB, d.Redis, clock.Real{}, d.Log, nil).Run(ctx)
}
