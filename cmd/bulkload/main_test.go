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

// A small run of the load tool (6 requests of 50 subscribers; the figures
// in docs/operations.md come from 200 of 10,000): it builds and starts a
// coordinator, every request is answered 200 or 429, every readiness
// sample is 200, and the report is complete.
func TestSmallBulkRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a coordinator")
	}
	testenv.NewRedis(t) // skips without the servers
	var out, errs bytes.Buffer
	err := run(context.Background(), []string{"-requests", "6", "-subscribers", "50", "-samples", "3"}, os.Getenv, &out, &errs)
	require.NoError(t, err, errs.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var res result
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &res), out.String())
	require.Equal(t, 6, res.OK+res.Limited, out.String())
	require.Positive(t, res.OK)
	require.Equal(t, 3, res.ReadyOK)
	require.Positive(t, res.PeakRSSMB)
	t.Log(out.String())
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-requests", "0"}, {"-requests", "1001"}, {"-samples", "0"}, {"-timeout", "0s"}} {
		err := run(context.Background(), args, func(string) string { return "set" }, &bytes.Buffer{}, &bytes.Buffer{})
		require.Error(t, err, args)
	}
	err := run(context.Background(), nil, func(string) string { return "" }, &bytes.Buffer{}, &bytes.Buffer{})
	require.ErrorContains(t, err, "REDIS_URL")
}
