package bench

import (
	"context"
	"crypto/sha1"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"gorm.io/gorm"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/internal/scratch"
	"github.com/chime-dev/chime/metrics"
	"github.com/chime-dev/chime/policy"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/store"
)

// zones are the benchmark's locations, in distinct zones.
var zones = []string{"Asia/Riyadh", "Asia/Jakarta", "America/New_York", "Europe/Istanbul", "Africa/Cairo", "Asia/Karachi", "Europe/London", "Asia/Dhaka"}

// RunChime registers the users through the HTTP API, fires the reminder and
// measures the delivery.
func RunChime(ctx context.Context, cfg Config) (Result, error) {
	cfg.defaults()
	res := Result{Run: cfg.Run, System: "chime", Users: cfg.Users, Sink: "no-op", Workers: fmt.Sprintf("%d in-process", cfg.Workers), Locations: cfg.Locations}
	if cfg.UUIDs {
		res.System = "chime (UUID IDs)"
	}
	if cfg.Webhook || cfg.WorkerProcs > 0 {
		res.Sink = "webhook"
	}
	if cfg.WorkerProcs > 0 {
		res.Workers = fmt.Sprintf("%d processes", cfg.WorkerProcs)
	}
	id := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	dsn, db, closeDB, err := scratch.OpenDB(ctx, cfg.MySQLDSN, "chime_bench_"+id, cfg.Log)
	if err != nil {
		return res, err
	}
	defer closeDB()
	rdb, err := chime.OpenRedis(ctx, cfg.RedisURL)
	if err != nil {
		return res, err
	}
	defer rdb.Close()
	if cfg.GroupSize == 0 {
		cfg.GroupSize, _ = grouping.RedisSize(ctx, rdb) // what the engine's index takes
	}
	ccfg, err := chime.LoadConfig(nil)
	if err != nil {
		return res, err
	}
	ccfg.RedisURL, ccfg.MySQLDSN = cfg.RedisURL, dsn
	ccfg.Prefix, ccfg.Queue, ccfg.ReplicaID = "chime-bench:"+id+":", "chime-bench-"+id, "bench"
	// The instant is set a few seconds ahead of the reminder, within the
	// engine's default PrepareLead (30 s): the occurrence is prepared as
	// soon as it is planned, as a reminder planned hours ahead is in
	// production, and the fire is measured from its instant.
	if !cfg.EngineDefaults {
		ccfg.ChunkSize, ccfg.Concurrency = cfg.ChunkSize, 64
	}
	defer cleanup(context.WithoutCancel(ctx), rdb, ccfg.Prefix, ccfg.Queue)

	counter := NewCounter()
	var s sender.Sender = counter
	if res.Sink == "webhook" {
		url, hook, stopRecv, err := startReceiver(counter, cfg.Log)
		if err != nil {
			return res, err
		}
		defer stopRecv()
		ccfg.WebhookURL, s = url, hook
	}

	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	runCtx, stop := context.WithCancel(ctx)
	g, runCtx := errgroup.WithContext(runCtx)
	defer func() { stop(); _ = g.Wait() }()
	g.Go(func() error { return chime.NewCoordinator(ccfg, db, rdb, clock.Real{}, cfg.Log, apiLn).Run(runCtx) })
	var procs []*exec.Cmd
	if cfg.WorkerProcs > 0 {
		for i := range cfg.WorkerProcs {
			cmd := exec.CommandContext(runCtx, cfg.WorkerBin)
			cmd.Env = append(os.Environ(), "REDIS_URL="+cfg.RedisURL, "MYSQL_DSN="+dsn, "CHIME_REDIS_PREFIX="+ccfg.Prefix,
				"CHIME_QUEUE="+ccfg.Queue, "CHIME_SENDER=webhook", "CHIME_WEBHOOK_URL="+ccfg.WebhookURL,
				"CHIME_CHUNK_SIZE="+strconv.Itoa(cfg.ChunkSize), "CHIME_WORKER_CONCURRENCY=64",
				"CHIME_REPLICA_ID=bench-worker-"+strconv.Itoa(i), "CHIME_LOG_LEVEL=warn")
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				return res, fmt.Errorf("start worker process: %w", err)
			}
			procs = append(procs, cmd)
		}
		defer func() {
			for _, p := range procs {
				_ = p.Process.Signal(os.Interrupt)
				_, _ = p.Process.Wait()
			}
		}()
	} else {
		for i := range cfg.Workers {
			wcfg := ccfg
			wcfg.ReplicaID = "bench-worker-" + strconv.Itoa(i)
			w := chime.NewWorker(wcfg, db, rdb, s, clock.Real{}, cfg.Log)
			g.Go(func() error { return w.Run(runCtx) })
		}
	}

	_, key, err := api.CreateApp(ctx, db, "bench")
	if err != nil {
		return res, err
	}
	c := &client{api.Client{Base: "http://" + apiLn.Addr().String(), Key: key}}
	locs := cfg.Locations
	locOf := func(i int) int { return i % locs }
	biggest := (cfg.Users + locs - 1) / locs
	if len(cfg.Sizes) > 0 {
		locOf, biggest = bySizes(cfg.Sizes), slices.Max(cfg.Sizes)
	}
	groups := max(1, (biggest+cfg.GroupSize-1)/cfg.GroupSize)
	if cfg.EngineGroups || cfg.EngineDefaults {
		groups = 0
	}
	var extra map[string]any
	if cfg.Policy {
		extra = map[string]any{"category": "marketing", "quiet": "drop"}
		res.System = "chime (policy)"
		caps := map[string]any{"frequency_caps": map[string]any{"marketing": map[string]any{"max": 3, "window": "24h"}}}
		if err := c.Do(ctx, http.MethodPut, "/v1/settings/delivery", caps, nil); err != nil {
			return res, err
		}
	}
	if err := c.putReminder(ctx, groups, locs, time.Now().Add(3*time.Hour), extra); err != nil {
		return res, err
	}

	mem0 := usedMemory(ctx, rdb)
	if cfg.RegisterProfile != nil && pprof.StartCPUProfile(cfg.RegisterProfile) == nil {
		defer pprof.StopCPUProfile() // in case registration fails
	}
	start := time.Now()
	if err := c.register(ctx, cfg.Users, locOf, cfg.UUIDs); err != nil {
		return res, err
	}
	res.RegisterSeconds = time.Since(start).Seconds()
	if cfg.RegisterProfile != nil {
		pprof.StopCPUProfile()
	}
	res.RegisterPerSecond = float64(cfg.Users) / res.RegisterSeconds
	res.RedisBytesPerUser = float64(usedMemory(ctx, rdb)-mem0) / float64(cfg.Users)
	if n, err := indexBytes(ctx, rdb, ccfg.Prefix); err == nil {
		perUser := float64(n) / float64(cfg.Users)
		res.IndexBytesPerUser = &perUser
	} else {
		cfg.Log.Warn("index bytes not measured", "err", err)
	}
	if n, err := databaseBytes(ctx, db); err == nil {
		res.MySQLBytes = n
	}

	fireAt := time.Now().Add(cfg.Lead).Truncate(time.Second).Add(time.Second)
	if cfg.Policy {
		if res.PolicySkipped, err = preferPolicy(ctx, db, rdb, ccfg.Prefix, cfg.Users, locOf, cfg.UUIDs, fireAt); err != nil {
			return res, err
		}
		fireAt = time.Now().Add(cfg.Lead).Truncate(time.Second).Add(time.Second)
	}
	if err := c.putReminder(ctx, groups, locs, fireAt, extra); err != nil {
		return res, err
	}
	chunks0, trips0 := metrics.PolicyCounts()
	var pids []int
	for _, p := range procs {
		pids = append(pids, p.Process.Pid)
	}
	err = measure(ctx, &res, counter, fireAt, cfg.Timeout, cfg.Profile, rdb, cfg.MySQLDSN, pids...)
	res.Tasks = processedTasks(ctx, rdb, ccfg.Queue)
	if chunks, trips := metrics.PolicyCounts(); cfg.Policy && chunks > chunks0 {
		res.PolicyChunks, res.PolicyRoundTripsPerChunk = int64(chunks-chunks0), (trips-trips0)/(chunks-chunks0)
	}
	return res, err
}

// preferPolicy gives users preferences for the policy run, as a bulk import
// would (MySQL rows, then the app's Redis mirror rebuilt): user i with i
// mod 10 = 0 opted out of "marketing", with i mod 10 = 1 in quiet hours at
// the fire (from an hour before it to two hours after, in the local time
// of the user's location). It returns how many users that leaves out.
func preferPolicy(ctx context.Context, db *gorm.DB, rdb redis.UniversalClient, prefix string, n int, locOf func(int) int, uuids bool, fireAt time.Time) (int64, error) {
	var app store.App
	if err := db.WithContext(ctx).Where("name = ?", "bench").First(&app).Error; err != nil {
		return 0, err
	}
	optOut := `{"reminders":[],"categories":["marketing"],"channels":[],"quiet_hours":null}`
	quiet := make([]string, len(zones))
	for i, z := range zones {
		loc, err := time.LoadLocation(z)
		if err != nil {
			return 0, err
		}
		at := fireAt.In(loc)
		quiet[i] = fmt.Sprintf(`{"reminders":[],"categories":[],"channels":[],"quiet_hours":{"start":%q,"end":%q}}`,
			at.Add(-time.Hour).Format("15:04"), at.Add(2*time.Hour).Format("15:04"))
	}
	var rows []store.UserPreference
	for i := range n {
		doc := ""
		switch i % 10 {
		case 0:
			doc = optOut
		case 1:
			doc = quiet[locOf(i)%len(zones)]
		default:
			continue
		}
		u := userID(i+1, uuids)
		rows = append(rows, store.UserPreference{AppID: app.ID, UserID: u, Shard: policy.Shard(app.ID, u), Doc: doc})
	}
	if err := db.WithContext(ctx).CreateInBatches(rows, 2000).Error; err != nil {
		return 0, fmt.Errorf("store preferences: %w", err)
	}
	if err := policy.New(policy.Config{Prefix: prefix}, rdb, db).Rebuild(ctx, app.ID); err != nil {
		return 0, err
	}
	return int64(len(rows)), nil
}

// client adds the benchmark's requests to the API client.
type client struct{ api.Client }

// putReminder defines the reminder at locs locations (zones taken in
// turn), all due at the instant at; groups 0 leaves the group count to the
// engine.
func (c *client) putReminder(ctx context.Context, groups, locs int, at time.Time, extra map[string]any) error {
	var times []api.ReminderTime
	for i := range locs {
		zone := zones[i%len(zones)]
		loc, err := time.LoadLocation(zone)
		if err != nil {
			return err
		}
		times = append(times, api.ReminderTime{Location: "loc-" + strconv.Itoa(i), Zone: zone, LocalTime: at.In(loc).Format("15:04:05")})
	}
	body := map[string]any{"title": "Benchmark", "body": "It is time.", "valid_for": "10m", "times": times}
	if groups > 0 {
		body["groups"] = groups
	}
	maps.Copy(body, extra)
	return c.Do(ctx, http.MethodPut, "/v1/reminders/bench", body, nil)
}

// register subscribes users 1..n, user i+1 at location locOf(i), in
// batches of 10,000 from as many concurrent clients as the API runs bulk
// requests of one app.
func (c *client) register(ctx context.Context, n int, locOf func(int) int, uuids bool) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(api.DefaultBulkPerApp)
	for start := 0; start < n; start += 10000 {
		g.Go(func() error {
			end := min(start+10000, n)
			// Structs, not maps: encoding 10,000 maps cost the client more
			// CPU than the API spends decoding them.
			type sub struct {
				UserID   string `json:"user_id"`
				Location string `json:"location"`
			}
			subs := make([]sub, 0, end-start)
			for i := start; i < end; i++ {
				subs = append(subs, sub{userID(i+1, uuids), "loc-" + strconv.Itoa(locOf(i))})
			}
			return c.Do(ctx, http.MethodPost, "/v1/reminders/bench/subscribers", map[string]any{"subscribers": subs}, nil)
		})
	}
	return g.Wait()
}

// userID returns the i-th user's ID: "i", or a UUID-like string derived
// from i.
func userID(i int, uuid bool) string {
	if !uuid {
		return strconv.Itoa(i)
	}
	h := sha1.Sum([]byte(strconv.Itoa(i)))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
