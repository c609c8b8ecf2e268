package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/gateway"
	"github.com/chime-dev/chime/internal/scratch"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/sender/logging"
	"github.com/chime-dev/chime/signing"
	"github.com/chime-dev/chime/status"
	"github.com/chime-dev/chime/store"
	"github.com/chime-dev/chime/token"
)

type config struct {
	RedisURL, MySQLDSN string
	Clients, Sources   int
	GatewayBin         string
	Parallel           int
	Verbose            bool
	CPUProfile         string
	Stderr             io.Writer
}

type result struct {
	Clients         int     `json:"clients"`
	Sources         int     `json:"sources"`
	ConnectSeconds  float64 `json:"connect_s"`
	ConnectPerSec   float64 `json:"connects_per_s"`
	Delivered       int     `json:"delivered"`
	MinMs           float64 `json:"latency_min_ms"`
	P50Ms           float64 `json:"latency_p50_ms"`
	P99Ms           float64 `json:"latency_p99_ms"`
	MaxMs           float64 `json:"latency_max_ms"`
	AcksRecordedMs  float64 `json:"acks_recorded_ms"`
	HeapPerConnKB   float64 `json:"gateway_heap_per_conn_kb"`
	RSSPerConnKB    float64 `json:"gateway_rss_per_conn_kb"`
	GatewayHeapMB   float64 `json:"gateway_heap_mb"`
	GatewayRSSMB    float64 `json:"gateway_rss_mb"`
	GatewayRoutines int     `json:"gateway_goroutines"`
}

func (r result) print(w io.Writer) {
	fmt.Fprintf(w, "clients                 %d (from %d source addresses)\n", r.Clients, r.Sources)
	fmt.Fprintf(w, "connect                 %.2fs, %.0f connections/s\n", r.ConnectSeconds, r.ConnectPerSec)
	fmt.Fprintf(w, "delivered               %d\n", r.Delivered)
	fmt.Fprintf(w, "latency from the instant min %.0f ms, p50 %.0f ms, p99 %.0f ms, max %.0f ms\n", r.MinMs, r.P50Ms, r.P99Ms, r.MaxMs)
	fmt.Fprintf(w, "all acks recorded       %.0f ms after the instant\n", r.AcksRecordedMs)
	fmt.Fprintf(w, "gateway per connection  heap %.1f KB, RSS %.1f KB (heap %.0f MB, RSS %.0f MB, %d goroutines in all)\n",
		r.HeapPerConnKB, r.RSSPerConnKB, r.GatewayHeapMB, r.GatewayRSSMB, r.GatewayRoutines)
	b, _ := json.Marshal(r)
	fmt.Fprintln(w, string(b))
}

func measure(ctx context.Context, cfg config) (result, error) {
	res := result{Clients: cfg.Clients, Sources: cfg.Sources}
	lvl := slog.LevelError
	if cfg.Verbose {
		lvl = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(cfg.Stderr, &slog.HandlerOptions{Level: lvl}))
	chime.RaiseFileLimit(slog.New(slog.NewTextHandler(io.Discard, nil)))

	id := newID()
	dsn, db, closeDB, err := scratch.OpenDB(ctx, cfg.MySQLDSN, "chime_wsload_"+id, log)
	if err != nil {
		return res, err
	}
	defer closeDB()
	rdb, err := chime.OpenRedis(ctx, cfg.RedisURL)
	if err != nil {
		return res, err
	}
	defer rdb.Close()
	prefix := "chime-wsload:" + id + ":"
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		scratch.CleanRedis(ctx, rdb, prefix, "chime-wsload-"+id)
	}()

	// The gateway, in its own process so that its memory is its own.
	bin := cfg.GatewayBin
	if bin == "" {
		var remove func()
		if bin, remove, err = scratch.Build(ctx, "github.com/chime-dev/chime/cmd/gateway", cfg.Stderr); err != nil {
			return res, err
		}
		defer remove()
	}
	gwAddr, err := scratch.FreeAddr()
	if err != nil {
		return res, err
	}
	// The gateway opens the app's signing key with these.
	secretKeys, err := seal.NewKey("wsload")
	if err != nil {
		return res, err
	}
	gw := exec.Command(bin)
	gw.Env = append(os.Environ(), "REDIS_URL="+cfg.RedisURL, "MYSQL_DSN="+dsn, "CHIME_REDIS_PREFIX="+prefix,
		"CHIME_GATEWAY_ADDR="+gwAddr, "CHIME_SECRET_KEYS="+secretKeys, "CHIME_REPLICA_ID=wsload-gw", "CHIME_METRICS_ADDR=127.0.0.1:0",
		// The clients come from a few addresses, far faster than one
		// address may connect: the handshake limit is lifted.
		"CHIME_GATEWAY_HANDSHAKE_RATE=1000000", "CHIME_GATEWAY_HANDSHAKE_BURST=1000000",
		"CHIME_LOG_LEVEL="+map[bool]string{true: "warn", false: "error"}[cfg.Verbose])
	gw.Stdout, gw.Stderr = cfg.Stderr, cfg.Stderr
	if err := gw.Start(); err != nil {
		return res, err
	}
	defer func() { _ = gw.Process.Signal(syscall.SIGTERM); _, _ = gw.Process.Wait() }()
	upCtx, cancelUp := context.WithTimeout(ctx, 30*time.Second)
	err = scratch.WaitUp(upCtx, "gateway", "http://"+gwAddr+"/healthz")
	cancelUp()
	if err != nil {
		return res, err
	}

	// Coordinator and worker, online delivery with a silent fallback.
	ecfg := chime.Config{
		RedisURL: cfg.RedisURL, MySQLDSN: dsn, Prefix: prefix, Queue: "chime-wsload-" + id, ReplicaID: "wsload",
		LeaderTTL: 5 * time.Second, PlanInterval: time.Minute, Horizon: 26 * time.Hour, PrepareLead: 2 * time.Second,
		AckTimeout: time.Minute, QueueTimeout: time.Minute, Concurrency: 16, ChunkSize: 500, LeaseTTL: 30 * time.Second,
		SecretKeys: secretKeys,
		Online: chime.OnlineConfig{Enabled: true, Heartbeat: 10 * time.Second, PingTimeout: 5 * time.Second,
			PresenceTTL: 30 * time.Second, InboxCap: 100, InboxTTL: time.Hour, UnreadTTL: time.Hour, StatusRetention: time.Hour, StatusPerUser: 200},
	}
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	runCtx, stop := context.WithCancel(ctx)
	eg, egCtx := errgroup.WithContext(runCtx)
	defer func() { stop(); _ = eg.Wait() }()
	coord := chime.NewCoordinator(ecfg, db, rdb, clock.Real{}, log, apiLn)
	eg.Go(func() error { return coord.Run(egCtx) })
	w := chime.NewWorker(ecfg, db, rdb, logging.New(slog.New(slog.NewTextHandler(io.Discard, nil))), clock.Real{}, log)
	eg.Go(func() error { return w.Run(egCtx) })

	app, key, err := api.CreateApp(ctx, db, "wsload")
	if err != nil {
		return res, err
	}
	cl := &api.Client{Base: "http://" + apiLn.Addr().String(), Key: key}
	// The clients' tokens are signed here with the app's key, as an app
	// backend does.
	var signingKey signing.Key
	if err := cl.Do(ctx, http.MethodPost, "/v1/signing-keys", nil, &signingKey); err != nil {
		return res, err
	}
	signingKey.App = app.ID
	users := make([]string, cfg.Clients)
	for i := range users {
		users[i] = strconv.Itoa(1_000_000 + i)
	}
	groups := max(1, cfg.Clients/400)
	defineAt := func(at time.Time) error {
		return cl.Do(ctx, http.MethodPut, "/v1/reminders/wsload", map[string]any{
			"title": "Load", "body": "every online user", "groups": groups, "valid_for": "5m",
			"times": []map[string]string{{"location": "utc", "zone": "UTC", "local_time": at.UTC().Format("15:04:05")}},
		}, nil)
	}
	if err := defineAt(time.Now().Add(2 * time.Hour)); err != nil {
		return res, err
	}
	for start := 0; start < len(users); start += 10000 {
		var subs []map[string]string
		for _, u := range users[start:min(start+10000, len(users))] {
			subs = append(subs, map[string]string{"user_id": u, "location": "utc"})
		}
		if err := cl.Do(ctx, http.MethodPost, "/v1/reminders/wsload/subscribers", map[string]any{"subscribers": subs}, nil); err != nil {
			return res, err
		}
	}

	heap0, rss0, _, err := gatewayMemory(gwAddr, gw.Process.Pid)
	if err != nil {
		return res, err
	}

	// Connect every client.
	transports := make([]*http.Client, cfg.Sources)
	for i := range transports {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}, Timeout: 30 * time.Second}
		transports[i] = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	url := "ws://" + gwAddr + "/ws"
	clients := make([]*gateway.Client, len(users))
	received := make([]time.Time, len(users))
	var got atomic.Int64
	var wg sync.WaitGroup
	defer func() {
		for _, c := range clients {
			if c != nil {
				_ = c.CloseNow()
			}
		}
		wg.Wait()
	}()
	t0 := time.Now()
	sem := make(chan struct{}, cfg.Parallel)
	var cg errgroup.Group
	for i, u := range users {
		sem <- struct{}{}
		cg.Go(func() error {
			defer func() { <-sem }()
			tok, err := token.Issue(signingKey, u, time.Hour, time.Now())
			if err != nil {
				return err
			}
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			c, err := gateway.Dial(dctx, url, tok, transports[i%len(transports)])
			if err != nil {
				return fmt.Errorf("client %d: %w", i, err)
			}
			clients[i] = c
			f := <-c.Frames
			if f.Type != "welcome" {
				return fmt.Errorf("client %d: first frame %q, want welcome", i, f.Type)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for f := range c.Frames {
					if f.Type == "message" && received[i].IsZero() {
						received[i] = f.Received
						got.Add(1)
						actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						_ = c.Ack(actx, f.Message.ID)
						cancel()
					}
				}
			}()
			return nil
		})
	}
	if err := cg.Wait(); err != nil {
		return res, err
	}
	res.ConnectSeconds = time.Since(t0).Seconds()
	res.ConnectPerSec = float64(cfg.Clients) / res.ConnectSeconds

	heap1, rss1, routines, err := gatewayMemory(gwAddr, gw.Process.Pid)
	if err != nil {
		return res, err
	}
	res.HeapPerConnKB = float64(int64(heap1)-int64(heap0)) / float64(cfg.Clients) / 1024
	res.RSSPerConnKB = float64(int64(rss1)-int64(rss0)) / float64(cfg.Clients) / 1024
	res.GatewayHeapMB, res.GatewayRSSMB, res.GatewayRoutines = float64(heap1)/(1<<20), float64(rss1)/(1<<20), routines

	// Fire.
	fireAt := time.Now().Add(3 * time.Second).Truncate(time.Second).Add(time.Second)
	if err := defineAt(fireAt); err != nil {
		return res, err
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return res, err
		}
		defer f.Close()
		time.Sleep(time.Until(fireAt))
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, err
		}
		defer pprof.StopCPUProfile()
	}
	deadline := time.Now().Add(2 * time.Minute)
	for got.Load() < int64(cfg.Clients) {
		if time.Now().After(deadline) {
			return res, fmt.Errorf("only %d of %d clients got the reminder", got.Load(), cfg.Clients)
		}
		time.Sleep(10 * time.Millisecond)
	}
	res.Delivered = int(got.Load())
	if cfg.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	lat := make([]float64, len(received))
	for i, r := range received {
		lat[i] = float64(r.Sub(fireAt).Microseconds()) / 1000
	}
	slices.Sort(lat)
	res.MinMs, res.P50Ms, res.P99Ms, res.MaxMs = lat[0], lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)], lat[len(lat)-1]

	// Acks: the delivered count of the occurrence reaches every client.
	var occ store.Occurrence
	for {
		if time.Now().After(deadline) {
			return res, fmt.Errorf("acks not all recorded")
		}
		if occ.ID == 0 {
			_ = db.Where("fire_at = ?", fireAt).First(&occ).Error
		}
		if occ.ID != 0 {
			counts, err := status.Counts(ctx, db, occ.ID)
			if err == nil && counts[status.Gateway][status.Delivered] >= int64(cfg.Clients) {
				res.AcksRecordedMs = float64(time.Since(fireAt).Milliseconds())
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return res, nil
}

// gatewayMemory returns the gateway's heap in use (from /debug/vars), its
// resident set size (from /proc) and its goroutines.
func gatewayMemory(addr string, pid int) (heap, rss uint64, routines int, err error) {
	resp, err := http.Get("http://" + addr + "/debug/vars")
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	var v struct {
		Memstats struct{ HeapInuse uint64 }
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return 0, 0, 0, fmt.Errorf("gateway /debug/vars: %w", err)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if kb, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")), 10, 64)
			rss = n * 1024
		}
	}
	hresp, err := http.Get("http://" + addr + "/healthz")
	if err == nil {
		var h struct{ Goroutines int }
		_ = json.NewDecoder(hresp.Body).Decode(&h)
		hresp.Body.Close()
		routines = h.Goroutines
	}
	return v.Memstats.HeapInuse, rss, routines, nil
}

func newID() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
