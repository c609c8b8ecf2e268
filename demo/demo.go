// Package demo runs Chime end to end in one process: coordinator, workers
// and a local webhook sink, on embedded stores (miniredis, which asynq runs
// on, and SQLite through gorm) unless REDIS_URL and MYSQL_DSN name real
// servers. It defines a reminder due a few seconds ahead in three time
// zones, registers users through the HTTP API, shows one progress bar per
// zone while groups deliver, and ends with one JSON line that says whether
// every registered user got the reminder exactly once.
//
// The embedded stores are for trying Chime out: miniredis is neither fast
// nor durable. Production and benchmarks use real Redis and MySQL.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/mattn/go-isatty"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sync/errgroup"
	"gorm.io/gorm"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/console"
	"github.com/chime-dev/chime/sender/webhook/sink"
	"github.com/chime-dev/chime/store"
)

// Options configures a demo run.
type Options struct {
	// Users is how many users are registered. Defaults to 10,000.
	Users int
	// Workers is how many workers deliver. Defaults to 2.
	Workers int
	// Lead is how far ahead of registration's end the reminder is due.
	// Defaults to 5s.
	Lead time.Duration
	// Groups is the reminder's group count. Defaults to 16.
	Groups int
	// Timeout bounds the wait for delivery after the fire. Defaults to 2m.
	Timeout time.Duration
	// Console keeps everything running after the summary, with a console
	// user made for the demo's app, until ctx is cancelled (Ctrl-C), and
	// prints the console's URL and sign-in.
	Console bool
	// Prayer also defines a prayer reminder and Jumu'ah over five cities
	// (PrayerCities) and prints their coming fires.
	Prayer bool
}

// Locations are the demo's places, one per time zone.
var Locations = []struct{ Name, Zone string }{
	{"mecca", "Asia/Riyadh"},
	{"jakarta", "Asia/Jakarta"},
	{"new-york", "America/New_York"},
}

// Summary is the demo's final JSON line.
type Summary struct {
	Registered        int    `json:"registered"`
	Delivered         int    `json:"delivered"`
	Duplicates        int    `json:"duplicates"`
	Zones             int    `json:"zones"`
	Groups            int    `json:"groups"`
	OccurrencesDone   int    `json:"occurrences_done"`
	RecordedDelivered int64  `json:"recorded_delivered"`
	FireAt            string `json:"fire_at"`
	FirstDeliveryMs   int64  `json:"first_delivery_ms"`
	LastDeliveryMs    int64  `json:"last_delivery_ms"`
	Redis             string `json:"redis"`
	Database          string `json:"database"`
	// With Options.Prayer: the cities, and the fires of the prayer
	// reminder in the next 24 hours and of Jumu'ah in the next week.
	PrayerCities   int `json:"prayer_cities,omitempty"`
	PrayerUpcoming int `json:"prayer_upcoming,omitempty"`
	JumuahUpcoming int `json:"jumuah_upcoming,omitempty"`
}

// Run runs the demo. environ supplies REDIS_URL, MYSQL_DSN and the other
// settings of chime.Config; the JSON summary goes to stdout, progress and
// logs to stderr.
func Run(ctx context.Context, opt Options, environ []string, stdout, stderr io.Writer) error {
	if opt.Users == 0 {
		opt.Users = 10000
	}
	if opt.Workers == 0 {
		opt.Workers = 2
	}
	if opt.Lead == 0 {
		opt.Lead = 5 * time.Second
	}
	if opt.Groups == 0 {
		opt.Groups = 16
	}
	if opt.Timeout == 0 {
		opt.Timeout = 2 * time.Minute
	}
	environ = append([]string{"CHIME_LOG_LEVEL=warn"}, environ...)
	cfg, err := chime.LoadConfig(environ)
	if err != nil {
		return err
	}
	log, err := cfg.Logger()
	if err != nil {
		return err
	}
	sum := Summary{Registered: opt.Users, Zones: len(Locations), Redis: "external", Database: "mysql"}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	cfg.Prefix = cfg.Prefix + "demo-" + run + ":"
	cfg.Queue = "chime-demo-" + run
	cfg.ReplicaID = "demo"
	cfg.PrepareLead = 2 * time.Second
	cfg.PlanInterval = 10 * time.Second

	if cfg.RedisURL == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("start embedded redis: %w", err)
		}
		defer mr.Close()
		go expire(ctx, mr)
		cfg.RedisURL = "redis://" + mr.Addr()
		sum.Redis = "embedded"
	}
	if cfg.MySQLDSN == "" {
		dir, err := os.MkdirTemp("", "chime-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.MySQLDSN = "sqlite:" + filepath.Join(dir, "chime.db")
		sum.Database = "sqlite"
	}
	db, err := store.Open(cfg.MySQLDSN, log)
	if err != nil {
		return err
	}
	if err := store.Migrate(ctx, db); err != nil {
		return err
	}
	rdb, err := chime.OpenRedis(ctx, cfg.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()

	recv := sink.New()
	sinkLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sinkSrv := &http.Server{Handler: recv, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = sinkSrv.Serve(sinkLn) }() // ErrServerClosed when the demo ends
	defer sinkSrv.Close()
	cfg.Sender, cfg.WebhookURL = "webhook", "http://"+sinkLn.Addr().String()+"/hook"

	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	g, runCtx := errgroup.WithContext(runCtx)
	g.Go(func() error { return chime.NewCoordinator(cfg, db, rdb, clock.Real{}, log, apiLn).Run(runCtx) })
	for i := range opt.Workers {
		wcfg := cfg
		wcfg.ReplicaID = fmt.Sprintf("demo-worker-%d", i+1)
		s, err := chime.NewSender(ctx, wcfg, db, rdb, log)
		if err != nil {
			return err
		}
		w := chime.NewWorker(wcfg, db, rdb, s, clock.Real{}, log)
		g.Go(func() error { return w.Run(runCtx) })
	}
	err = drive(runCtx, opt, &sum, db, "http://"+apiLn.Addr().String(), recv, stderr)
	if err == nil && opt.Console {
		line, _ := json.Marshal(sum)
		fmt.Fprintln(stdout, string(line))
		if err = openConsole(runCtx, db, "http://"+apiLn.Addr().String(), stderr); err == nil {
			<-runCtx.Done()
		}
	}
	stop()
	if werr := g.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	if !opt.Console {
		line, _ := json.Marshal(sum)
		fmt.Fprintln(stdout, string(line))
	}
	if sum.Delivered != sum.Registered || sum.Duplicates != 0 {
		return fmt.Errorf("delivered %d of %d registered users with %d duplicates", sum.Delivered, sum.Registered, sum.Duplicates)
	}
	return nil
}

// ConsoleEmail is the demo's console user, an editor of its app.
const ConsoleEmail = "demo@chime.example"

// openConsole makes the demo's console user and says where to sign in.
func openConsole(ctx context.Context, db *gorm.DB, base string, stderr io.Writer) error {
	app, err := store.FindAppNamed(ctx, db, "demo")
	if err != nil {
		return err
	}
	password := console.NewPassword()
	hash, err := console.HashPassword(password)
	if err != nil {
		return err
	}
	if _, err := store.CreateConsoleUser(ctx, db, store.ConsoleUser{AppID: app.ID, Email: ConsoleEmail, PasswordHash: hash, Role: store.RoleEditor}); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "\nconsole: %s%s/login\n  email:    %s\n  password: %s\nthe demo keeps running; Ctrl-C stops it\n", base, console.Path, ConsoleEmail, password)
	return nil
}

// expire makes miniredis's TTLs run in real time (it only moves them when
// told), so leases and locks expire as they would on Redis.
func expire(ctx context.Context, mr *miniredis.Miniredis) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			mr.FastForward(100 * time.Millisecond)
		}
	}
}

func drive(ctx context.Context, opt Options, sum *Summary, db *gorm.DB, base string, recv *sink.Sink, stderr io.Writer) error {
	_, key, err := api.CreateApp(ctx, db, "demo")
	if err != nil {
		return err
	}
	c := &client{api.Client{Base: base, Key: key}}
	reminder := "demo-reminder"
	// Define the reminder an hour out while users register, then move it to
	// a few seconds ahead: registration time does not eat into the lead.
	if err := c.putReminder(ctx, reminder, opt.Groups, time.Now().Add(time.Hour)); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "registering %d users in %d zones through the API...\n", opt.Users, len(Locations))
	batch := make([]map[string]string, 0, 10000)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := c.Do(ctx, http.MethodPost, "/v1/reminders/"+reminder+"/subscribers", map[string]any{"subscribers": batch}, nil)
		batch = batch[:0]
		return err
	}
	for i := range opt.Users {
		batch = append(batch, map[string]string{
			"user_id":  strconv.Itoa(1_000_000 + i),
			"location": Locations[i%len(Locations)].Name,
		})
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	fireAt := time.Now().Add(opt.Lead).Truncate(time.Second)
	if err := c.putReminder(ctx, reminder, opt.Groups, fireAt); err != nil {
		return err
	}
	sum.FireAt = fireAt.UTC().Format(time.RFC3339)
	fmt.Fprintf(stderr, "reminder %q due at %s in %d zones (%s local)\n", reminder, sum.FireAt, len(Locations), localTimes(fireAt))

	want := map[string]int{}
	for i := range opt.Users {
		want[Locations[i%len(Locations)].Name]++
	}
	deadline := fireAt.Add(opt.Timeout)
	if err := progress(ctx, recv, want, deadline, stderr); err != nil {
		return err
	}
	// The sink has everything; wait for the coordinator to record the
	// finish acks.
	for {
		var occ struct{ Occurrences []api.Occurrence }
		if err := c.Do(ctx, http.MethodGet, "/v1/occurrences?reminder="+reminder, nil, &occ); err != nil {
			return err
		}
		sum.OccurrencesDone, sum.RecordedDelivered, sum.Groups = 0, 0, 0
		for _, o := range occ.Occurrences {
			if o.State == store.OccDone {
				sum.OccurrencesDone++
			}
			sum.RecordedDelivered += o.Delivered
			sum.Groups += o.GroupsTotal
		}
		if sum.OccurrencesDone >= len(Locations) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	st := recv.Stats()
	sum.Delivered, sum.Duplicates = st.Users, st.Duplicates
	if !st.First.IsZero() {
		sum.FirstDeliveryMs = st.First.Sub(fireAt).Milliseconds()
		sum.LastDeliveryMs = st.Last.Sub(fireAt).Milliseconds()
	}
	if opt.Prayer {
		return prayerDemo(ctx, c, sum, stderr)
	}
	return nil
}

func localTimes(at time.Time) string {
	var b bytes.Buffer
	for i, l := range Locations {
		loc, _ := time.LoadLocation(l.Zone)
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", l.Name, at.In(loc).Format("15:04:05"))
	}
	return b.String()
}

// progress shows one bar per location until every user is delivered or the
// deadline passes.
func progress(ctx context.Context, recv *sink.Sink, want map[string]int, deadline time.Time, stderr io.Writer) error {
	tty := false
	if f, ok := stderr.(*os.File); ok {
		tty = isatty.IsTerminal(f.Fd())
	}
	var p *mpb.Progress
	bars := map[string]*mpb.Bar{}
	if tty {
		p = mpb.New(mpb.WithOutput(stderr), mpb.WithWidth(40), mpb.WithRefreshRate(100*time.Millisecond))
		for _, l := range Locations {
			bars[l.Name] = p.AddBar(int64(want[l.Name]),
				mpb.PrependDecorators(decor.Name(fmt.Sprintf("%-9s %-17s", l.Name, l.Zone)), decor.CountersNoUnit(" %6d / %6d")),
				mpb.AppendDecorators(decor.Percentage()))
		}
	}
	lastLine := time.Time{}
	for {
		st := recv.Stats()
		done := true
		for _, l := range Locations {
			got := st.ByLocation[l.Name]
			if b := bars[l.Name]; b != nil {
				b.SetCurrent(int64(got))
			}
			if got < want[l.Name] {
				done = false
			}
		}
		if !tty && (time.Since(lastLine) >= time.Second || done) && st.Users > 0 {
			lastLine = time.Now()
			line := "delivered:"
			for _, l := range Locations {
				line += fmt.Sprintf(" %s %d/%d", l.Name, st.ByLocation[l.Name], want[l.Name])
			}
			fmt.Fprintln(stderr, line)
		}
		if done || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if p != nil {
		for _, b := range bars {
			b.Abort(false)
		}
		p.Wait()
	}
	return nil
}

// client adds the demo's requests to the API client.
type client struct{ api.Client }

func (c *client) putReminder(ctx context.Context, key string, groups int, at time.Time) error {
	var times []api.ReminderTime
	for _, l := range Locations {
		loc, _ := time.LoadLocation(l.Zone)
		times = append(times, api.ReminderTime{Location: l.Name, Zone: l.Zone, LocalTime: at.In(loc).Format("15:04:05")})
	}
	return c.Do(ctx, http.MethodPut, "/v1/reminders/"+key, map[string]any{
		"title": "Chime demo", "body": "It is time.", "groups": groups, "valid_for": "10m", "times": times,
	}, nil)
}
