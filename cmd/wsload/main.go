// Command wsload measures one gateway under many WebSocket clients on
// loopback. It starts a gateway process (cmd/gateway, built unless -gateway
// names a binary), a coordinator and a worker with online delivery in its
// own process, registers the users, opens -clients connections (from
// several 127.0.0.x source addresses, so ephemeral ports do not run out),
// fires a reminder that reaches all of them, and reports the connect rate,
// the delivery latency from the fire instant to the client (p50, p99, max),
// the time until every client's ack was recorded, and the gateway's memory
// per connection (heap and RSS growth over the idle gateway, divided by the
// connections). It prints a table and one JSON line. Needs REDIS_URL and
// MYSQL_DSN; it works in a fresh database and its own Redis key prefix.
//
//	wsload [-clients 10000] [-sources 4] [-gateway PATH] [-parallel 256]
package main

import (
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
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wsload:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wsload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := config{RedisURL: getenv("REDIS_URL"), MySQLDSN: getenv("MYSQL_DSN")}
	fs.IntVar(&cfg.Clients, "clients", 10000, "concurrent WebSocket clients")
	fs.IntVar(&cfg.Sources, "sources", 4, "source addresses 127.0.0.1 .. 127.0.0.N the clients connect from")
	fs.StringVar(&cfg.GatewayBin, "gateway", "", "gateway binary (default: build ./cmd/gateway)")
	fs.IntVar(&cfg.Parallel, "parallel", 256, "connections being opened at once")
	fs.BoolVar(&cfg.Verbose, "v", false, "log the gateway's and the engine's warnings")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of this process (engine and clients) from the fire to the last delivery")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case cfg.RedisURL == "" || cfg.MySQLDSN == "":
		return errors.New("REDIS_URL and MYSQL_DSN are required")
	case cfg.Clients < 1 || cfg.Sources < 1 || cfg.Sources > 250 || cfg.Parallel < 1:
		return errors.New("-clients and -parallel must be at least 1, -sources from 1 to 250")
	}
	cfg.Stderr = stderr
	res, err := measure(ctx, cfg)
	if err != nil {
		return err
	}
	res.print(stdout)
	return nil
}
