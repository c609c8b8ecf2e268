// Command gateway is the WebSocket server apps' clients stay connected to:
// it records who is online where, replays a user's waiting inbox on
// connect, and delivers what workers publish to its stream. Run any number
// of instances behind a TCP load balancer. Configuration is read from the
// environment (see the README); CHIME_SECRET_KEYS is required (the apps'
// token signing keys are sealed under it). Clients
// connect to /ws on CHIME_GATEWAY_ADDR; /livez, /readyz and /metrics are on
// CHIME_METRICS_ADDR, as for workers.
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
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, environ []string) error {
	d, err := chime.Open(ctx, environ, "(MySQL keeps the delivery counts)")
	if err != nil {
		return err
	}
	defer d.Close()
	chime.RaiseFileLimit(d.Log)
	g, err := chime.NewGateway(d.Config, d.DB, d.Redis, clock.Real{}, d.Log, nil)
	if err != nil {
		return err
	}
	return d.RunWithProbes(ctx, g)
}
