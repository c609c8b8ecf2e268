package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
)

// The test binary is also the load run's client processes.
func TestMain(m *testing.M) {
	if os.Getenv(clientsEnv) != "" {
		if err := runClients(context.Background(), os.Stdin, os.Stdout); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A small run of the load tool (200 clients over two gateway processes and
// two client processes, and 100 offline users; the figures in
// docs/benchmarks.md come from 10,000, 60,000 and 100,000): every client
// connects, gets the fired reminder once and has its ack recorded, each
// gateway delivers to its half, every offline user's device gets one push
// from the local APNs or FCM server and its inbox copy is counted, and the
// report is complete.
func TestSmallLoadRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gateway and opens 200 connections")
	}
	testenv.NewRedis(t) // skips without the servers
	var out, errs bytes.Buffer
	err := run(context.Background(), []string{"-clients", "200", "-sources", "2", "-gateways", "2", "-client-procs", "2", "-offline", "100"}, os.Getenv, &out, &errs)
	require.NoError(t, err, errs.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var res result
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &res), out.String())
	require.Equal(t, 200, res.Delivered)
	require.Len(t, res.PerGateway, 2)
	for _, g := range res.PerGateway {
		require.Equal(t, 100, g.Connections)
		require.Equal(t, 100, g.Delivered)
	}
	require.Equal(t, 100, res.Offline)
	require.Equal(t, 100, res.PushAccepted, "one push per offline user's device")
	require.Positive(t, res.APNsLastMs)
	require.Positive(t, res.FCMLastMs)
	require.Positive(t, res.InboxRecordedMs)
	for _, part := range []*float64{res.EngineCPUUsPerUser, res.GatewayCPUUsPerUser, res.ClientCPUUsPerUser, res.MySQLCPUUsPerUser, res.ServerCPUUsPerUser, res.CoresBusy} {
		require.NotNil(t, part, "every part's CPU measured: %s", lines[len(lines)-1])
	}
	require.Positive(t, *res.ServerCPUUsPerUser)
	require.Positive(t, res.RedisUsPerUser)
	require.Positive(t, res.ConnectPerSec)
	require.Positive(t, res.AcksRecordedMs)
	require.LessOrEqual(t, res.P50Ms, res.P99Ms)
	t.Log(out.String())
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-clients", "0"}, {"-sources", "300"}, {"-parallel", "0"}, {"-gateways", "0"}, {"-offline", "-1"}, {"-offline", "1000001"}, {"-clients", "40000", "-gateways", "2"}} {
		err := run(context.Background(), args, func(string) string { return "set" }, &bytes.Buffer{}, &bytes.Buffer{})
		require.Error(t, err, args)
	}
	err := run(context.Background(), nil, func(string) string { return "" }, &bytes.Buffer{}, &bytes.Buffer{})
	require.ErrorContains(t, err, "REDIS_URL")
}

// -chart reads the JSON lines of runs (other lines skipped) and draws a
// PNG; a file without any run is an error.
func TestChart(t *testing.T) {
	dir := t.TempDir()
	runs := dir + "/runs.jsonl"
	require.NoError(t, os.WriteFile(runs, []byte("clients 200\n"+
		`{"clients":200,"latency_p50_ms":50,"latency_p99_ms":63}`+"\n"+
		`{"clients":10000,"latency_p50_ms":1196,"latency_p99_ms":2455}`+"\n"), 0o644))
	png := dir + "/latency.png"
	require.NoError(t, run(context.Background(), []string{"-chart", png, runs}, os.Getenv, &bytes.Buffer{}, &bytes.Buffer{}))
	b, err := os.ReadFile(png)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(b, []byte("\x89PNG")))
	empty := dir + "/empty.jsonl"
	require.NoError(t, os.WriteFile(empty, []byte("no runs\n"), 0o644))
	require.Error(t, run(context.Background(), []string{"-chart", png, empty}, os.Getenv, &bytes.Buffer{}, &bytes.Buffer{}))
}
