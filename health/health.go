// Package health answers the probes of a Chime process and serves its
// metrics.
//
// /livez says the process is alive: it answers 200 as long as the process
// serves HTTP and checks nothing else, so a Redis or MySQL outage never
// makes Kubernetes restart healthy pods (restarting would not help and
// would lose the work in hand). /readyz says the process can do its work:
// it pings each dependency (Redis, MySQL) with a deadline and answers 503
// naming what failed, so a pod cut off from its stores is taken out of
// its Service until they answer again. The answer says only which store is
// unavailable ("database unavailable"); the error itself, which can name
// hosts and users, goes to the log. MySQL is pinged over a pool of its own
// (store.OpenProbe): the pool the requests use can be busy to its limit,
// and a ping queued behind them would take a working replica out of
// service. /metrics serves the Prometheus metrics (package metrics).
//
// The coordinator answers these on its API port (package api adds the
// routes); the worker, which has no API, runs a Server on
// CHIME_METRICS_ADDR.
package health

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chime-dev/chime/metrics"
)

// DefaultTimeout bounds each readiness check.
const DefaultTimeout = 2 * time.Second

// Check reports whether one dependency answers.
type Check func(ctx context.Context) error

// Stores returns the checks of Chime's two stores (of those that are set).
// db should be a pool of its own (store.OpenProbe), not the one requests
// use.
func Stores(db *sql.DB, rdb redis.UniversalClient) map[string]Check {
	checks := map[string]Check{}
	if rdb != nil {
		checks["redis"] = func(ctx context.Context) error { return rdb.Ping(ctx).Err() }
	}
	if db != nil {
		checks["mysql"] = db.PingContext
	}
	return checks
}

// unavailable is what /readyz says of a failed check.
var unavailable = map[string]string{"mysql": "database unavailable", "redis": "redis unavailable"}

// Live answers the liveness probe: 200 while the process serves HTTP.
func Live(w http.ResponseWriter, _ *http.Request) {
	write(w, http.StatusOK, map[string]any{"status": "ok"})
}

// Ready returns the readiness probe's handler: every check runs at once,
// each bounded by timeout; 200 if all pass, else 503 naming the failed
// stores. The errors are logged to log (if not nil), not answered.
func Ready(checks map[string]Check, timeout time.Duration, log *slog.Logger) http.HandlerFunc {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		type result struct {
			name string
			err  error
		}
		res := make(chan result, len(checks))
		for name, c := range checks {
			go func() { res <- result{name, c(ctx)} }()
		}
		status := map[string]string{}
		code := http.StatusOK
		for range checks {
			r := <-res
			if r.err != nil {
				status[r.name] = cmp.Or(unavailable[r.name], "unavailable")
				code = http.StatusServiceUnavailable
				if log != nil {
					log.Warn("readiness check failed", "check", r.name, "err", r.err)
				}
			} else {
				status[r.name] = "ok"
			}
		}
		body := map[string]any{"status": "ok", "checks": status}
		if code != http.StatusOK {
			body["status"] = "unavailable"
		}
		write(w, code, body)
	}
}

// Names returns the checks' names in order, for logs.
func Names(checks map[string]Check) []string {
	out := make([]string, 0, len(checks))
	for n := range checks {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func write(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Handler serves /livez, /readyz and /metrics; failed readiness checks are
// logged to log.
func Handler(checks map[string]Check, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", Live)
	mux.HandleFunc("GET /readyz", Ready(checks, DefaultTimeout, log))
	mux.Handle("GET /metrics", metrics.Handler())
	return mux
}

// Server serves Handler on its own address, for processes without an API.
type Server struct {
	// Addr is where to listen, e.g. ":9090".
	Addr string
	// Checks are the readiness checks.
	Checks map[string]Check
	// Listener, if set, is used instead of listening on Addr.
	Listener net.Listener
	Log      *slog.Logger
}

// Run serves until ctx is cancelled.
func (s *Server) Run(ctx context.Context) error {
	ln := s.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.Addr); err != nil {
			return fmt.Errorf("health listen: %w", err)
		}
	}
	srv := &http.Server{Handler: Handler(s.Checks, s.Log), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if s.Log != nil {
		s.Log.Info("probes and metrics listening", "addr", ln.Addr().String(), "checks", Names(s.Checks))
	}
	select {
	case err := <-errc:
		return fmt.Errorf("health server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("health server shutdown: %w", err)
	}
	return nil
}
