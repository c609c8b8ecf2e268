package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Report is every result of one benchmark run.
type Report struct {
	Machine string
	Results []Result
}

// Machine describes the machine the run is on.
func Machine() string {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "MemTotal:"), "%d", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
		}
	}
	return fmt.Sprintf("%d cores (%s)%s, %s %s/%s", runtime.NumCPU(), model, mem, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// Summary is one line about r.
func (r Result) Summary() string {
	return fmt.Sprintf("%s: %s [%s, %s]: %d/%d delivered, %.0f/s, last at +%.0f ms, p99 group lateness %.0f ms, %.1f B/user in Redis, register %.0f/s, CPU s engine %s redis %s mysql %s",
		runName(r), r.System, r.Sink, r.Workers, r.Delivered, r.Users, r.DeliveriesPerSec, r.FireToLastMs, r.LatenessP99Ms, r.RedisBytesPerUser, r.RegisterPerSecond,
		orNA(r.CPU.Engine), orNA(r.CPU.Redis), orNA(r.CPU.MySQL))
}

// orNA1 formats a figure that may not have been measured, to one decimal.
func orNA1(f *float64) string {
	if f == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", *f)
}

// orNA formats a figure that may not have been measured.
func orNA(f *float64) string {
	if f == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", *f)
}

var header = []string{"run", "system", "sink", "workers", "users", "locations", "register/s", "Redis B/user", "index B/user", "tasks", "fire→last ms", "deliveries/s", "p50 ms", "p99 ms", "max ms", "CPU s/M", "complete"}

func (r Result) row() []string {
	tasks, fireToLast := "n/a", "n/a"
	if r.Tasks > 0 {
		tasks = fmt.Sprint(r.Tasks)
	}
	if r.Complete {
		fireToLast = fmt.Sprintf("%.0f", r.FireToLastMs)
	}
	return []string{runName(r), r.System, r.Sink, r.Workers, fmt.Sprint(r.Users), fmt.Sprint(r.Locations), fmt.Sprintf("%.0f", r.RegisterPerSecond),
		fmt.Sprintf("%.1f", r.RedisBytesPerUser), orNA1(r.IndexBytesPerUser), tasks, fireToLast, fmt.Sprintf("%.0f", r.DeliveriesPerSec),
		fmt.Sprintf("%.0f", r.LatenessP50Ms), fmt.Sprintf("%.0f", r.LatenessP99Ms), fmt.Sprintf("%.0f", r.LatenessMaxMs),
		orNA(r.CPUSecondsPerMilln), fmt.Sprint(r.Complete)}
}

// Print writes the results as a text table.
func (rep Report) Print(w io.Writer) {
	fmt.Fprintln(w, "machine:", rep.Machine)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	for _, r := range rep.Results {
		fmt.Fprintln(tw, strings.Join(r.row(), "\t")+"\t")
	}
	tw.Flush()
}

// Markdown returns the results as a Markdown table.
func (rep Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s\n\n| %s |\n|%s\n", rep.Machine, strings.Join(header, " | "), strings.Repeat("---|", len(header)))
	for _, r := range rep.Results {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(r.row(), " | "))
	}
	return b.String()
}

// Headline is the final JSON line. A key whose run was not made (bench
// -only) or whose figure could not be measured is left out.
type Headline struct {
	Users                       int      `json:"users,omitempty"`
	EnginePerS                  float64  `json:"engine_per_s,omitempty"`
	PeerPerS                    float64  `json:"peer_per_s,omitempty"`
	Ratio                       float64  `json:"ratio,omitempty"`
	RedisBytesPerSubscriber     float64  `json:"redis_bytes_per_subscriber,omitempty"`
	PeerRedisBytesPerUser       float64  `json:"peer_redis_bytes_per_user,omitempty"`
	RedisBytesPerUUIDSubscriber float64  `json:"redis_bytes_per_uuid_subscriber,omitempty"`
	P99LatenessMs               float64  `json:"p99_lateness_ms,omitempty"`
	FireToLastMs                float64  `json:"fire_to_last_ms,omitempty"`
	WebhookPerS                 float64  `json:"webhook_per_s,omitempty"`
	CPUSecondsPerMillion        *float64 `json:"cpu_s_per_million,omitempty"` // left out when not measured
	PeerCPUSecondsPerMillion    *float64 `json:"peer_cpu_s_per_million,omitempty"`

	// Incomplete names the runs cut short by their timeout: their
	// delivery figures are left out, those of their registration (which
	// finished) are kept.
	Incomplete []string `json:"incomplete,omitempty"`

	// The runs below are left out when they were not run.
	ManyLocationsTasks        *int64   `json:"many_locations_tasks,omitempty"`
	ManyLocationsFireToLastMs *float64 `json:"many_locations_fire_to_last_ms,omitempty"`

	TenMillionFireToLastMs            *float64 `json:"ten_million_fire_to_last_ms,omitempty"`
	TenMillionRedisBytesPerSubscriber *float64 `json:"ten_million_redis_bytes_per_subscriber,omitempty"`
	TenMillionRegisterPerS            *float64 `json:"ten_million_register_per_s,omitempty"`
	TenMillionMySQLBytes              *int64   `json:"ten_million_mysql_bytes,omitempty"`
	TenMillionCPUSecondsPerMillion    *float64 `json:"ten_million_cpu_s_per_million,omitempty"`

	DefaultsP99LatenessMs        *float64 `json:"defaults_p99_lateness_ms,omitempty"`
	DefaultsRatio                *float64 `json:"defaults_ratio,omitempty"`
	DefaultsCPUSecondsPerMillion *float64 `json:"defaults_cpu_s_per_million,omitempty"`

	// The policy run: its deliveries per second, and as a ratio of the
	// main (plain) run's; users handled (sent or left out) per second as
	// a ratio of the main run's; the Redis round trips per chunk its
	// decisions took.
	PolicyPerS               *float64 `json:"policy_per_s,omitempty"`
	PolicyRatio              *float64 `json:"policy_ratio,omitempty"`
	PolicyUsersRatio         *float64 `json:"policy_users_ratio,omitempty"`
	PolicyRoundTripsPerChunk *float64 `json:"policy_round_trips_per_chunk,omitempty"`
}

// Headline picks the figures the JSON line reports: the first Chime no-op
// run against the better of the peer's no-op runs.
func (rep Report) Headline() Headline {
	var h Headline
	var engine, peer, defaults, pol *Result
	for i := range rep.Results {
		r := &rep.Results[i]
		switch {
		case r.Run == "uuid":
			if r.IndexBytesPerUser != nil {
				h.RedisBytesPerUUIDSubscriber = *r.IndexBytesPerUser
			}
		case r.Run == "ten_million":
			h.TenMillionRedisBytesPerSubscriber, h.TenMillionRegisterPerS = r.IndexBytesPerUser, &r.RegisterPerSecond
			if r.MySQLBytes > 0 {
				h.TenMillionMySQLBytes = &r.MySQLBytes
			}
			if r.Complete {
				h.TenMillionFireToLastMs, h.TenMillionCPUSecondsPerMillion = &r.FireToLastMs, r.CPUSecondsPerMilln
			} else {
				h.Incomplete = append(h.Incomplete, r.Run)
			}
		case r.Run != "" && !r.Complete:
			// A run cut short by its timeout has no final figures.
			h.Incomplete = append(h.Incomplete, r.Run)
		case r.Run == "many_locations":
			h.ManyLocationsTasks, h.ManyLocationsFireToLastMs = &r.Tasks, &r.FireToLastMs
		case r.Run == "defaults":
			defaults = r
			h.DefaultsP99LatenessMs, h.DefaultsCPUSecondsPerMillion = &r.LatenessP99Ms, r.CPUSecondsPerMilln
		case r.Run == "policy":
			pol = r
			h.PolicyPerS, h.PolicyRoundTripsPerChunk = &r.DeliveriesPerSec, &r.PolicyRoundTripsPerChunk
		case r.Run != "":
		case r.System == "chime" && r.Sink == "no-op" && engine == nil:
			engine = r
		case !strings.HasPrefix(r.System, "chime") && r.Sink == "no-op" && (peer == nil || r.DeliveriesPerSec > peer.DeliveriesPerSec):
			peer = r
		case r.System == "chime" && r.Sink == "webhook" && h.WebhookPerS == 0 && engine != nil && r.Users == engine.Users:
			h.WebhookPerS = r.DeliveriesPerSec
		}
	}
	if engine != nil {
		h.Users, h.EnginePerS, h.RedisBytesPerSubscriber = engine.Users, engine.DeliveriesPerSec, engine.RedisBytesPerUser
		h.P99LatenessMs, h.FireToLastMs, h.CPUSecondsPerMillion = engine.LatenessP99Ms, engine.FireToLastMs, engine.CPUSecondsPerMilln
	}
	if pol != nil && engine != nil && engine.DeliveriesPerSec > 0 && pol.FireToLastMs > 0 && engine.FireToLastMs > 0 {
		ratio := pol.DeliveriesPerSec / engine.DeliveriesPerSec
		users := (float64(pol.Users) / pol.FireToLastMs) / (float64(engine.Users) / engine.FireToLastMs)
		h.PolicyRatio, h.PolicyUsersRatio = &ratio, &users
	}
	if peer != nil {
		h.PeerPerS, h.PeerRedisBytesPerUser, h.PeerCPUSecondsPerMillion = peer.DeliveriesPerSec, peer.RedisBytesPerUser, peer.CPUSecondsPerMilln
		if peer.DeliveriesPerSec > 0 {
			h.Ratio = h.EnginePerS / peer.DeliveriesPerSec
			if defaults != nil {
				ratio := defaults.DeliveriesPerSec / peer.DeliveriesPerSec
				h.DefaultsRatio = &ratio
			}
		}
	}
	return h
}

// JSON returns the headline as one JSON line.
func (rep Report) JSON() string {
	b, _ := json.Marshal(rep.Headline())
	return string(b)
}

// Chart draws cumulative deliveries over time after the fire instant, on a
// logarithmic time axis (Chime finishes in under a second, the peer takes
// minutes), for the first run of each system and sink at the headline user
// count.
func (rep Report) Chart(path string) error {
	p := plot.New()
	h := rep.Headline()
	p.Title.Text = fmt.Sprintf("Users delivered after the fire instant, %d subscribers, one run", h.Users)
	p.X.Label.Text = "seconds after the fire instant (log scale)"
	p.Y.Label.Text = "users delivered"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	seen := map[string]bool{}
	var args []any
	for _, r := range rep.Results {
		name := fmt.Sprintf("%s, %s sink", r.System, r.Sink)
		if r.Users != h.Users || len(r.Timeline) == 0 || seen[name] || strings.HasSuffix(r.Workers, " processes") {
			continue
		}
		seen[name] = true
		pts := make(plotter.XYs, 0, len(r.Timeline))
		for _, t := range r.Timeline {
			if t.Ms >= 10 {
				pts = append(pts, plotter.XY{X: t.Ms / 1000, Y: float64(t.Delivered)})
			}
		}
		if len(pts) > 0 {
			args = append(args, name, pts)
		}
	}
	if len(args) == 0 {
		return fmt.Errorf("no run at %d users has a timeline to draw", h.Users)
	}
	if err := plotutil.AddLines(p, args...); err != nil {
		return err
	}
	return p.Save(10*vg.Inch, 5*vg.Inch, path)
}
