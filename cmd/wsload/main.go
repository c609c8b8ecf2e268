// Command wsload measures gateways under many WebSocket clients on
// loopback. It starts -gateways gateway processes (cmd/gateway, built
// unless -gateway names a binary), a coordinator and a worker with online
// delivery in its own process, registers the users, opens -clients
// connections from -client-procs processes of its own (one process holds
// at most its open-file limit, about 19,000 here; from several 127.0.0.x
// source addresses, so ephemeral ports do not run out; client i connects
// to gateway i mod -gateways), fires a reminder that reaches all of them,
// and reports the connect rate, the delivery latency from the fire instant
// to the client (p50, p99, max), the time until every client's ack was
// recorded, each gateway's memory per connection (heap and RSS growth over
// the idle gateway, divided by its connections) and messages delivered,
// and Redis's CPU time (INFO cpu) and commands (INFO commandstats) per
// client between just before the fire and the last ack recorded, and
// separately per connection over the connects (the whole server's: other
// work on the same Redis counts too). It prints a table and one JSON line.
// With -offline N, N more users of the same reminder never connect: each
// has one device (iOS and Android in turn) on local APNs and FCM servers
// this process starts, and the report adds, per channel, the time from the
// fire to the last push each server accepted and to the offline users'
// inbox copies all counted; the per-user figures are then per user of the
// reminder, online or not.
// Needs REDIS_URL and MYSQL_DSN; it works in a fresh database and its own
// Redis key prefix.
//
//	wsload [-clients 10000] [-offline 0] [-gateways 1] [-client-procs N] [-sources 4] [-gateway PATH] [-parallel 256]
//	wsload -chart latency.png runs.jsonl...
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	if os.Getenv(clientsEnv) != "" {
		err = runClients(ctx, os.Stdin, os.Stdout)
	} else {
		err = run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsload:", err)
		os.Exit(1)
	}
}

// perProcess is how many clients a client process holds by default, and
// maxPerProcess the most it or a gateway may hold: about the open-file
// limit a process gets here (20,000) less what else it keeps open.
const (
	perProcess    = 15000
	maxPerProcess = 19000
	// maxOffline bounds -offline: each offline user's device is one API
	// request before the run.
	maxOffline = 1000000
)

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wsload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := config{RedisURL: getenv("REDIS_URL"), MySQLDSN: getenv("MYSQL_DSN")}
	fs.IntVar(&cfg.Clients, "clients", 10000, "concurrent WebSocket clients")
	fs.IntVar(&cfg.Offline, "offline", 0, "users who never connect, reached by push through local APNs and FCM servers and by the inbox")
	fs.IntVar(&cfg.Gateways, "gateways", 1, "gateway processes the clients are spread over")
	fs.IntVar(&cfg.Procs, "client-procs", 0, "client processes (default: one per 15,000 clients)")
	fs.IntVar(&cfg.Sources, "sources", 4, "source addresses 127.0.0.1 .. 127.0.0.N the clients connect from")
	fs.StringVar(&cfg.GatewayBin, "gateway", "", "gateway binary (default: build ./cmd/gateway)")
	fs.IntVar(&cfg.Parallel, "parallel", 256, "connections being opened at once")
	fs.BoolVar(&cfg.Verbose, "v", false, "log the gateway's and the engine's warnings")
	chartPath := fs.String("chart", "", "draw latency against clients from the JSON lines in the files named as arguments to this PNG, and run nothing")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of this process (the engine) from the fire to the last ack recorded")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *chartPath != "" {
		return chart(*chartPath, fs.Args())
	}
	cfg.Procs = cmp.Or(cfg.Procs, (cfg.Clients+perProcess-1)/perProcess)
	switch {
	case cfg.RedisURL == "" || cfg.MySQLDSN == "":
		return errors.New("REDIS_URL and MYSQL_DSN are required")
	case cfg.Clients < 1 || cfg.Sources < 1 || cfg.Sources > 250 || cfg.Parallel < 1 || cfg.Gateways < 1 || cfg.Procs < 1:
		return errors.New("-clients, -gateways, -client-procs and -parallel must be at least 1, -sources from 1 to 250")
	case cfg.Offline < 0 || cfg.Offline > maxOffline:
		return fmt.Errorf("-offline must be from 0 to %d", maxOffline)
	case cfg.Clients > maxPerProcess*cfg.Gateways || cfg.Clients > maxPerProcess*cfg.Procs:
		return fmt.Errorf("at most %d clients per gateway and per client process (their open-file limit)", maxPerProcess)
	}
	cfg.Stderr = stderr
	res, err := measure(ctx, cfg)
	if err != nil {
		return err
	}
	res.print(stdout)
	return nil
}
