package health_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/health"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/store"
)

// syncBuffer is a bytes.Buffer that handlers of several goroutines may
// write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serve runs a health server with checks on loopback, logging to log (if
// not nil), and returns its URL.
func serve(t *testing.T, checks map[string]health.Check, log *slog.Logger) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&health.Server{Listener: ln, Checks: checks, Log: log}).Run(ctx) }()
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
	url := serve(t, health.Stores(probe(t, env), env.Redis), nil)

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

// probe opens a readiness pool of its own to env's database.
func probe(t *testing.T, env *testenv.Env) *sql.DB {
	t.Helper()
	p, err := store.OpenProbe(env.DB)
	require.NoError(t, err)
	require.NotNil(t, p)
	t.Cleanup(func() { p.Close() })
	return p
}

// Fault: Redis is unreachable (a client pointed at a loopback port nobody
// listens on; MariaDB is real and up). Checked: /readyz answers 503 within
// its deadline and names Redis, while /livez still answers 200, so the pod
// leaves its Service but is not restarted. The answer says only "redis
// unavailable": the error, with the address it dialed, is in the log.
func TestReadinessFailsWithoutRedis(t *testing.T) {
	env := testenv.New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	require.NoError(t, ln.Close())
	rdb := redis.NewClient(&redis.Options{Addr: dead, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() })
	var logs syncBuffer
	url := serve(t, health.Stores(probe(t, env), rdb), slog.New(slog.NewTextHandler(&logs, nil)))

	code, body := get(t, url+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	var r readiness
	require.NoError(t, json.Unmarshal([]byte(body), &r))
	require.Equal(t, readiness{Status: "unavailable", Checks: map[string]string{"mysql": "ok", "redis": "redis unavailable"}}, r)
	require.NotContains(t, body, dead)
	require.Contains(t, logs.String(), "refused")
	require.Contains(t, logs.String(), dead)

	code, _ = get(t, url+"/livez")
	require.Equal(t, http.StatusOK, code)
}
