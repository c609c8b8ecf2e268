// Command worker is a stateless asynq server that delivers group tasks:
// start ack, read members, send in chunks with a checkpoint after each,
// finish ack. Run as many as the load needs. It serves /livez, /readyz and
// /metrics on CHIME_METRICS_ADDR. Configuration is read from the environment
// (see the README).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/clock"
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
	d, err := chime.Open(ctx, environ, "(MySQL is read only to rebuild a lost membership index)")
	if err != nil {
		return err
	}
	defer d.Close()
	s, err := chime.NewSender(ctx, d.Config, d.DB, d.Redis, d.Log)
	if err != nil {
		return err
	}
	w := chime.NewWorker(d.Config, d.DB, d.Redis, s, clock.Real{}, d.Log)
	// Every worker also posts the apps' delivery events.
	events := chime.NewDeliveryEventDispatcher(d.Config, d.DB, d.Redis, clock.Real{}, d.Log)
	return d.RunWithProbes(ctx, chime.Parts{w, events})
}
