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
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/internal/scratch"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/sender/logging"
	"github.com/chime-dev/chime/signing"
	"github.com/chime-dev/chime/status"
	"github.com/chime-dev/chime/store"
)

type config struct {
	RedisURL, MySQLDSN string
	Clients, Sources   int
	Offline            int
	Gateways, Procs    int
	GatewayBin         string
	Parallel           int
	Verbose            bool
	CPUProfile         string
	Stderr             io.Writer
}

// gatewayResult is one gateway process's figures.
type gatewayResult struct {
	Connections   int     `json:"connections"`
	Delivered     int     `json:"delivered"`
	HeapPerConnKB float64 `json:"heap_per_conn_kb"`
	RSSPerConnKB  float64 `json:"rss_per_conn_kb"`
	RSSMB         float64 `json:"rss_mb"`
	Goroutines    int     `json:"goroutines"`
	// CPUUsPerUser is the gateway process's CPU time from just before the
	// fire to the last ack recorded, per connection it holds.
	CPUUsPerUser float64 `json:"cpu_us_per_user"`
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
	// RedisUsPerUser is Redis's CPU time (INFO cpu, user and system:
	// commands, scripts and network I/O) from just before the fire to the
	// last ack recorded, per client: the delivery and ack path only, not
	// the connects before it.
	RedisUsPerUser float64 `json:"redis_us_per_user"`
	// RedisCmdUsPerUser is the same span's INFO commandstats usec summed
	// over all commands, per client. A command a script runs is counted in
	// its own line and again in the script's, so this counts scripted
	// work about twice; it is kept to compare with earlier runs.
	RedisCmdUsPerUser float64 `json:"redis_cmd_us_per_user"`
	// RedisCallsPerUser counts the commands Redis ran in that span (those
	// scripts ran included) per client, RedisScriptsPerUser the script
	// calls: unlike the time, neither depends on how loaded the machine is.
	RedisCallsPerUser   float64 `json:"redis_calls_per_user"`
	RedisScriptsPerUser float64 `json:"redis_scripts_per_user"`
	// ConnectRedisUsPerConn and ConnectRedisCallsPerConn are Redis's CPU
	// time and commands from the first connect to the last, per
	// connection (presence registration and the inbox read on connect).
	ConnectRedisUsPerConn    float64 `json:"connect_redis_us_per_conn"`
	ConnectRedisCallsPerConn float64 `json:"connect_redis_calls_per_conn"`
	// The CPU time per user of each part, over the same span as
	// RedisUsPerUser (see cpu.go): the engine (coordinator and worker), all
	// gateways, all client processes and MySQL. ServerCPUUsPerUser is what
	// a deployment pays per user (engine, gateways, Redis and MySQL; not
	// the clients), CoresBusy the CPU seconds of all parts, clients
	// included, per second of that span: how many of the machine's cores
	// the run kept busy. A part that could not be measured is left out.
	EngineCPUUsPerUser  *float64 `json:"engine_cpu_us_per_user,omitempty"`
	GatewayCPUUsPerUser *float64 `json:"gateway_cpu_us_per_user,omitempty"`
	ClientCPUUsPerUser  *float64 `json:"client_cpu_us_per_user,omitempty"`
	MySQLCPUUsPerUser   *float64 `json:"mysql_cpu_us_per_user,omitempty"`
	ServerCPUUsPerUser  *float64 `json:"server_cpu_us_per_user,omitempty"`
	CoresBusy           *float64 `json:"cores_busy,omitempty"`
	// With -offline: the offline users, the pushes the local APNs and FCM
	// servers accepted, the time from the fire to the last push each
	// accepted, and to the offline users' inbox copies all counted in
	// MySQL (status inbox pending). The online channel's fire-to-last is
	// latency_max_ms, its acks acks_recorded_ms.
	Offline         int             `json:"offline,omitempty"`
	PushAccepted    int             `json:"push_accepted,omitempty"`
	APNsLastMs      float64         `json:"apns_fire_to_last_ms,omitempty"`
	FCMLastMs       float64         `json:"fcm_fire_to_last_ms,omitempty"`
	InboxRecordedMs float64         `json:"inbox_recorded_ms,omitempty"`
	ClientProcs     int             `json:"client_procs"`
	PerGateway      []gatewayResult `json:"gateways"`
}

func (r result) print(w io.Writer) {
	fmt.Fprintf(w, "clients                 %d (from %d source addresses)\n", r.Clients, r.Sources)
	fmt.Fprintf(w, "connect                 %.2fs, %.0f connections/s\n", r.ConnectSeconds, r.ConnectPerSec)
	fmt.Fprintf(w, "delivered               %d\n", r.Delivered)
	fmt.Fprintf(w, "latency from the instant min %.0f ms, p50 %.0f ms, p99 %.0f ms, max %.0f ms\n", r.MinMs, r.P50Ms, r.P99Ms, r.MaxMs)
	fmt.Fprintf(w, "all acks recorded       %.0f ms after the instant\n", r.AcksRecordedMs)
	if r.Offline > 0 {
		fmt.Fprintf(w, "offline users           %d: last push accepted %.0f ms (APNs), %.0f ms (FCM) after the instant, %d pushes; inbox copies counted %.0f ms after\n",
			r.Offline, r.APNsLastMs, r.FCMLastMs, r.PushAccepted, r.InboxRecordedMs)
	}
	fmt.Fprintf(w, "gateway per connection  heap %.1f KB, RSS %.1f KB (heap %.0f MB, RSS %.0f MB, %d goroutines in all; the largest of %d gateways)\n",
		r.HeapPerConnKB, r.RSSPerConnKB, r.GatewayHeapMB, r.GatewayRSSMB, r.GatewayRoutines, len(r.PerGateway))
	for i, g := range r.PerGateway {
		fmt.Fprintf(w, "  gateway %d             %d connections, %d delivered, heap %.1f KB and RSS %.1f KB per connection, RSS %.0f MB, %d goroutines\n",
			i+1, g.Connections, g.Delivered, g.HeapPerConnKB, g.RSSPerConnKB, g.RSSMB, g.Goroutines)
		if g.CPUUsPerUser > 0 {
			fmt.Fprintf(w, "                        CPU %.1f µs per connection, fire to last ack\n", g.CPUUsPerUser)
		}
	}
	fmt.Fprintf(w, "redis per user          %.1f µs CPU (INFO cpu), %.1f µs in commands (commandstats, scripted commands twice), %.1f commands, %.2f script calls (fire to last ack)\n",
		r.RedisUsPerUser, r.RedisCmdUsPerUser, r.RedisCallsPerUser, r.RedisScriptsPerUser)
	if r.EngineCPUUsPerUser != nil {
		fmt.Fprintf(w, "cpu per user            engine %.1f µs, gateways %.1f µs, clients %.1f µs, redis %.1f µs, mysql %s (fire to last ack)\n",
			*r.EngineCPUUsPerUser, *r.GatewayCPUUsPerUser, *r.ClientCPUUsPerUser, r.RedisUsPerUser, orNA(r.MySQLCPUUsPerUser, "%.1f µs"))
		fmt.Fprintf(w, "                        servers %s per user, %s cores busy\n", orNA(r.ServerCPUUsPerUser, "%.1f µs"), orNA(r.CoresBusy, "%.2f"))
	}
	fmt.Fprintf(w, "redis per connect       %.1f µs CPU, %.1f commands\n", r.ConnectRedisUsPerConn, r.ConnectRedisCallsPerConn)
	b, _ := json.Marshal(r)
	fmt.Fprintln(w, string(b))
}

// orNA formats *v, or "n/a" for a figure that was not measured.
func orNA(v *float64, format string) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf(format, *v)
}

func measure(ctx context.Context, cfg config) (result, error) {
	res := result{Clients: cfg.Clients, Sources: cfg.Sources, ClientProcs: cfg.Procs}
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

	mysqlServer := mysqlPID(dsn)

	// The gateway, in its own process so that its memory is its own.
	bin := cfg.GatewayBin
	if bin == "" {
		var remove func()
		if bin, remove, err = scratch.Build(ctx, "github.com/chime-dev/chime/cmd/gateway", cfg.Stderr); err != nil {
			return res, err
		}
		defer remove()
	}
	// The gateway opens the app's signing key with these.
	secretKeys, err := seal.NewKey("wsload")
	if err != nil {
		return res, err
	}
	type gw struct {
		addr, metrics string
		cmd           *exec.Cmd
	}
	gws := make([]gw, cfg.Gateways)
	for i := range gws {
		if gws[i].addr, err = scratch.FreeAddr(); err != nil {
			return res, err
		}
		if gws[i].metrics, err = scratch.FreeAddr(); err != nil {
			return res, err
		}
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "REDIS_URL="+cfg.RedisURL, "MYSQL_DSN="+dsn, "CHIME_REDIS_PREFIX="+prefix,
			"CHIME_GATEWAY_ADDR="+gws[i].addr, "CHIME_SECRET_KEYS="+secretKeys, "CHIME_REPLICA_ID=wsload-gw"+strconv.Itoa(i+1),
			"CHIME_METRICS_ADDR="+gws[i].metrics,
			// The clients come from a few addresses, far faster than one
			// address may connect: the handshake limit is lifted.
			"CHIME_GATEWAY_HANDSHAKE_RATE=1000000", "CHIME_GATEWAY_HANDSHAKE_BURST=1000000",
			"CHIME_LOG_LEVEL="+map[bool]string{true: "warn", false: "error"}[cfg.Verbose])
		cmd.Stdout, cmd.Stderr = cfg.Stderr, cfg.Stderr
		if err := cmd.Start(); err != nil {
			return res, err
		}
		gws[i].cmd = cmd
		defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _, _ = cmd.Process.Wait() }()
	}
	for _, g := range gws {
		upCtx, cancelUp := context.WithTimeout(ctx, 30*time.Second)
		err = scratch.WaitUp(upCtx, "gateway", "http://"+g.addr+"/healthz")
		cancelUp()
		if err != nil {
			return res, err
		}
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
	var fallback sender.Sender = logging.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	var pushSrv *pushServers
	if cfg.Offline > 0 {
		dir, err := os.MkdirTemp("", "wsload-push-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(dir)
		if pushSrv, ecfg.Push, err = startPush(dir); err != nil {
			return res, err
		}
		defer pushSrv.Close()
		ecfg.Sender = "push"
		if fallback, err = chime.NewSender(ctx, ecfg, db, rdb, log); err != nil {
			return res, err
		}
	}
	w := chime.NewWorker(ecfg, db, rdb, fallback, clock.Real{}, log)
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
	// Users 0 to Clients-1 connect; the offline ones come after them.
	users := make([]string, cfg.Clients+cfg.Offline)
	for i := range users {
		users[i] = userID(i)
	}
	if err := registerDevices(ctx, cl, users[cfg.Clients:]); err != nil {
		return res, fmt.Errorf("offline users' devices: %w", err)
	}
	groups := max(1, len(users)/400)
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

	type mem struct {
		heap, rss uint64
		routines  int
	}
	idle := make([]mem, len(gws))
	for i, g := range gws {
		if idle[i].heap, idle[i].rss, _, err = gatewayMemory(g.addr, g.cmd.Process.Pid); err != nil {
			return res, err
		}
	}

	// Connect every client, spread over the client processes and, client
	// by client, over the gateways.
	urls := make([]string, len(gws))
	for i, g := range gws {
		urls[i] = "ws://" + g.addr + "/ws"
	}
	redisC0, err := redisUsec(ctx, rdb)
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	procs := make([]*clientProc, cfg.Procs)
	per := (cfg.Clients + cfg.Procs - 1) / cfg.Procs
	for i := range procs {
		first := i * per
		n := min(per, cfg.Clients-first)
		if procs[i], err = startClients(job{URLs: urls, First: first, N: n, Sources: cfg.Sources, Parallel: max(1, cfg.Parallel/cfg.Procs), Key: signingKey, App: app.ID}, cfg.Stderr); err != nil {
			return res, err
		}
		defer procs[i].stop()
	}
	for _, p := range procs {
		if _, err := p.next(); err != nil {
			return res, err
		}
	}
	res.ConnectSeconds = time.Since(t0).Seconds()
	res.ConnectPerSec = float64(cfg.Clients) / res.ConnectSeconds
	redisC1, err := redisUsec(ctx, rdb)
	if err != nil {
		return res, err
	}
	res.ConnectRedisUsPerConn = (redisC1.cpu - redisC0.cpu) / float64(cfg.Clients)
	res.ConnectRedisCallsPerConn = (redisC1.calls - redisC0.calls) / float64(cfg.Clients)

	now := make([]mem, len(gws))
	for i, g := range gws {
		if now[i].heap, now[i].rss, now[i].routines, err = gatewayMemory(g.addr, g.cmd.Process.Pid); err != nil {
			return res, err
		}
	}
	res.PerGateway = make([]gatewayResult, len(gws))
	for i := range gws {
		conns := cfg.Clients / len(gws)
		if i < cfg.Clients%len(gws) {
			conns++
		}
		g := gatewayResult{Connections: conns, Goroutines: now[i].routines, RSSMB: float64(now[i].rss) / (1 << 20),
			HeapPerConnKB: float64(int64(now[i].heap)-int64(idle[i].heap)) / float64(conns) / 1024,
			RSSPerConnKB:  float64(int64(now[i].rss)-int64(idle[i].rss)) / float64(conns) / 1024}
		res.PerGateway[i] = g
		if g.RSSPerConnKB >= res.RSSPerConnKB {
			res.HeapPerConnKB, res.RSSPerConnKB = g.HeapPerConnKB, g.RSSPerConnKB
			res.GatewayHeapMB, res.GatewayRSSMB, res.GatewayRoutines = float64(now[i].heap)/(1<<20), g.RSSMB, g.Goroutines
		}
	}

	// Fire.
	fireAt := time.Now().Add(3 * time.Second).Truncate(time.Second).Add(time.Second)
	if err := defineAt(fireAt); err != nil {
		return res, err
	}
	for _, p := range procs {
		if err := p.send(line{FireAt: fireAt}); err != nil {
			return res, err
		}
	}
	time.Sleep(time.Until(fireAt) - 200*time.Millisecond)
	gwPIDs, clientPIDs := make([]int, len(gws)), make([]int, len(procs))
	for i, g := range gws {
		gwPIDs[i] = g.cmd.Process.Pid
	}
	for i, p := range procs {
		clientPIDs[i] = p.cmd.Process.Pid
	}
	pset := procSet{gateways: gwPIDs, clients: clientPIDs, mysql: mysqlServer}
	cpu0, wall0 := pset.read(), time.Now()
	redis0, err := redisUsec(ctx, rdb)
	if err != nil {
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

	// Acks: the delivered count of the occurrence reaches every client
	// (each acknowledges once it has the message).
	deadline := time.Now().Add(3 * time.Minute)
	var occ store.Occurrence
	for {
		if time.Now().After(deadline) {
			for i, g := range gws {
				fmt.Fprintf(cfg.Stderr, "gateway %d: %s\n", i+1, gatewayFaults(g.addr, g.metrics))
			}
			return res, fmt.Errorf("acks not all recorded")
		}
		if occ.ID == 0 {
			_ = db.Where("fire_at = ?", fireAt).First(&occ).Error
		}
		if occ.ID != 0 {
			counts, err := status.Counts(ctx, db, occ.ID)
			since := float64(time.Since(fireAt).Milliseconds())
			if err == nil && res.AcksRecordedMs == 0 && counts[status.Gateway][status.Delivered] >= int64(cfg.Clients) {
				res.AcksRecordedMs = since
			}
			if err == nil && res.InboxRecordedMs == 0 && cfg.Offline > 0 && counts[status.Inbox][status.Pending] >= int64(cfg.Offline) {
				res.InboxRecordedMs = since
			}
			if res.AcksRecordedMs > 0 && (cfg.Offline == 0 || res.InboxRecordedMs > 0 && pushSrv.accepted() >= cfg.Offline) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	redis1, err := redisUsec(ctx, rdb)
	if err != nil {
		return res, err
	}
	cpu1, wall1 := pset.read(), time.Now()
	n := float64(cfg.Clients + cfg.Offline)
	if pushSrv != nil {
		res.Offline, res.PushAccepted = cfg.Offline, pushSrv.accepted()
		res.APNsLastMs = float64(pushSrv.apns.LastAccepted().Sub(fireAt).Microseconds()) / 1000
		res.FCMLastMs = float64(pushSrv.fcm.LastAccepted().Sub(fireAt).Microseconds()) / 1000
	}
	res.RedisUsPerUser = (redis1.cpu - redis0.cpu) / n
	res.RedisCmdUsPerUser = (redis1.usec - redis0.usec) / n
	res.RedisCallsPerUser = (redis1.calls - redis0.calls) / n
	res.RedisScriptsPerUser = (redis1.scripts - redis0.scripts) / n
	res.perUser(cpu0, cpu1, (redis1.cpu-redis0.cpu)/1e6, wall1.Sub(wall0).Seconds())
	if cfg.Verbose {
		for name, c := range redis1.byCommand {
			if d := c - redis0.byCommand[name]; d > 0 {
				fmt.Fprintf(cfg.Stderr, "redis %s: %.3f calls, %.2f µs per user\n", name, d/n, (redis1.usecBy[name]-redis0.usecBy[name])/n)
			}
		}
	}
	if cfg.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	var lat []float64
	for _, p := range procs {
		l, err := p.next()
		if err != nil {
			return res, err
		}
		lat = append(lat, l.Latencies...)
	}
	res.Delivered = len(lat)
	slices.Sort(lat)
	res.MinMs, res.P50Ms, res.P99Ms, res.MaxMs = lat[0], lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)], lat[len(lat)-1]
	for i, g := range gws {
		res.PerGateway[i].Delivered = messagesSent(g.metrics)
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

// redisUsec reads Redis's CPU time (INFO cpu) and the time and calls of
// its commands since its statistics were last reset (INFO commandstats),
// in microseconds.
func redisUsec(ctx context.Context, rdb redis.UniversalClient) (redisStats, error) {
	info, err := rdb.Info(ctx, "commandstats", "cpu").Result()
	if err != nil {
		return redisStats{}, fmt.Errorf("redis commandstats: %w", err)
	}
	st := redisStats{byCommand: map[string]float64{}, usecBy: map[string]float64{}}
	for _, l := range strings.Split(info, "\n") {
		name, stats, ok := strings.Cut(strings.TrimSpace(l), ":")
		if name == "used_cpu_sys" || name == "used_cpu_user" {
			secs, _ := strconv.ParseFloat(stats, 64)
			st.cpu += secs * 1e6
			continue
		}
		if !strings.HasPrefix(name, "cmdstat_") || !ok {
			continue
		}
		for _, kv := range strings.Split(stats, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseFloat(v, 64)
			switch k {
			case "usec":
				st.usec += n
				st.usecBy[strings.TrimPrefix(name, "cmdstat_")] += n
			case "calls":
				st.calls += n
				st.byCommand[strings.TrimPrefix(name, "cmdstat_")] += n
				if name == "cmdstat_evalsha" || name == "cmdstat_eval" {
					st.scripts += n
				}
			}
		}
	}
	return st, nil
}

// redisStats are INFO cpu's process CPU time and INFO commandstats'
// totals: time in commands, commands (those scripts run included) and
// script calls.
type redisStats struct {
	cpu, usec, calls, scripts float64
	byCommand                 map[string]float64 // calls
	usecBy                    map[string]float64
}

// messagesSent reads chime_gateway_messages_sent_total from a gateway's
// /metrics.
func messagesSent(addr string) int {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "chime_gateway_messages_sent_total "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int(f)
		}
	}
	return -1
}

// gatewayFaults says how many connections a gateway holds and what its
// fault metrics counted, for a run that did not complete.
func gatewayFaults(addr, metricsAddr string) string {
	var h struct{ Connections int }
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		_ = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
	}
	out := fmt.Sprintf("%d connections", h.Connections)
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		for _, m := range []string{"chime_gateway_slow_client_closes_total", "chime_gateway_presence_refresh_errors_total", "chime_gateway_messages_sent_total", "chime_gateway_handshakes_refused_total"} {
			if strings.HasPrefix(l, m) && !strings.HasSuffix(l, " 0") {
				out += ", " + l
			}
		}
	}
	return out
}
