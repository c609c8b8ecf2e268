// Package testenv gives integration tests real Redis and MySQL/MariaDB,
// isolated per test: a Redis key prefix and asynq queue of their own, and a
// fresh database created for the test and dropped after it. Tests that need
// them skip when REDIS_URL and MYSQL_DSN are unset (make test sets them,
// starting the servers if needed), unless CHIME_REQUIRE_INTEGRATION=1, in
// which case they fail.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/internal/scratch"
	"github.com/chime-dev/chime/store"
)

// Env is one test's share of the servers.
type Env struct {
	RedisURL string
	// DSN names the test's own database.
	DSN    string
	Redis  *redis.Client
	DB     *gorm.DB
	Prefix string // Redis key prefix, ending in ":"
	Queue  string // asynq queue name
	Log    *slog.Logger
}

// ID returns a short random name.
func ID() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func need(t testing.TB, vars ...string) {
	t.Helper()
	for _, v := range vars {
		if os.Getenv(v) == "" {
			if os.Getenv("CHIME_REQUIRE_INTEGRATION") == "1" {
				t.Fatalf("%s is not set (run: make test)", v)
			}
			t.Skipf("%s is not set; integration test skipped (run: make test)", v)
		}
	}
}

// New returns an environment with a migrated database of the test's own.
func New(t testing.TB) *Env {
	t.Helper()
	need(t, "REDIS_URL", "MYSQL_DSN")
	e := NewRedis(t)
	e.DSN = freshDatabase(t, os.Getenv("MYSQL_DSN"), "chime_t_"+ID())
	db, err := store.Open(e.DSN, e.Log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := store.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	e.DB = db
	t.Cleanup(func() {
		if s, err := db.DB(); err == nil {
			s.Close()
		}
	})
	return e
}

// NewRedis returns an environment with Redis only.
func NewRedis(t testing.TB) *Env {
	t.Helper()
	need(t, "REDIS_URL")
	id := ID()
	e := &Env{RedisURL: os.Getenv("REDIS_URL"), Prefix: "chime-test:" + id + ":", Queue: "chime-test-" + id, Log: Logger(t)}
	opt, err := redis.ParseURL(e.RedisURL)
	if err != nil {
		t.Fatalf("REDIS_URL: %v", err)
	}
	e.Redis = redis.NewClient(opt)
	t.Cleanup(func() { cleanRedis(e); e.Redis.Close() })
	return e
}

// FreshDSN creates another empty database and returns its DSN.
func FreshDSN(t testing.TB) string {
	t.Helper()
	need(t, "MYSQL_DSN")
	return freshDatabase(t, os.Getenv("MYSQL_DSN"), "chime_t_"+ID())
}

func freshDatabase(t testing.TB, base, name string) string {
	t.Helper()
	dsn, drop, err := store.CreateDatabase(base, name, Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	return dsn
}

func cleanRedis(e *Env) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	scratch.CleanRedis(ctx, e.Redis, e.Prefix, e.Queue)
}

// Logger routes slog records to t.Log.
func Logger(t testing.TB) *slog.Logger {
	lvl := slog.LevelInfo
	if os.Getenv("CHIME_TEST_DEBUG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: lvl}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// WaitUntil polls cond every 20ms until it holds or timeout passes, then
// fails the test with what.
func WaitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// CPUTime returns the CPU time (user and system) this process has used.
// Benchmarks report deliveries per CPU second with it: on a shared machine
// that varies less than deliveries per wall-clock second.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
