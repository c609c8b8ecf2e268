package health_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/health"
	"github.com/chime-dev/chime/internal/testenv"
)

// serve runs a health server with checks on loopback and returns its URL.
func serve(t *testing.T, checks map[string]health.Check) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&health.Server{Listener: ln, Checks: checks}).Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// With real Redis and MariaDB answering, every probe answers 200 and
// /metrics serves Chime's metrics.
func TestProbesWithStoresUp(t *testing.T) {
	env := testenv.New(t)
	url := serve(t, health.Stores(env.DB, env.Redis))

	code, _ := get(t, url+"/livez")
	require.Equal(t, http.StatusOK, code)
	code, body := get(t, url+"/readyz")
	require.Equal(t, http.StatusOK, code, body)
	var r readiness
	require.NoError(t, json.Unmarshal([]byte(body), &r))
	require.Equal(t, readiness{Status: "ok", Checks: map[string]string{"redis": "ok", "mysql": "ok"}}, r)

	code, body = get(t, url+"/metrics")
	require.Equal(t, http.StatusOK, code)
	// chime_deliveries_total has series only once a channel delivered.
	for _, name := range []string{"chime_fire_lateness_seconds", "chime_group_duration_seconds",
		"chime_requeues_total", "chime_group_releases_total", "chime_occurrences_fired_total",
		"chime_occurrences_missed_total", "chime_groups_expired_total", "chime_leader", "go_goroutines"} {
		require.Contains(t, body, "# TYPE "+name+" ", name)
	}
}

// Fault: Redis is unreachable (a client pointed at a loopback port nobody
// listens on; MariaDB is real and up). Checked: /readyz answers 503 within
// its deadline and names Redis, while /livez still answers 200, so the pod
// leaves its Service but is not restarted.
func TestReadinessFailsWithoutRedis(t *testing.T) {
	env := testenv.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	require.NoError(t, ln.Close())
	rdb := redis.NewClient(&redis.Options{Addr: dead, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() })
	url := serve(t, health.Stores(env.DB, rdb))

	code, body := get(t, url+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	var r readiness
	require.NoError(t, json.Unmarshal([]byte(body), &r))
	require.Equal(t, "unavailable", r.Status)
	require.Equal(t, "ok", r.Checks["mysql"])
	require.True(t, strings.Contains(r.Checks["redis"], "refused"), r.Checks["redis"])

	code, _ = get(t, url+"/livez")
	require.Equal(t, http.StatusOK, code)
}
