// Command bench runs Chime and one-asynq-task-per-user side by side on the
// same Redis and MariaDB and prints a table and one JSON line. make bench
// and make bench-quick run it with servers started by scripts/testenv.sh.
//
// Besides the main run (-users over 4 locations, groups sized to
// -group-size) and its peers it runs many_locations (1,000,000 users over
// 5,000 locations of Zipf-like sizes), ten_million (10,000,000 integer-like
// IDs over 4 locations), uuid (UUID-like IDs) and defaults (the main run on
// the engine's default settings); -quick runs each at a tenth of its size
// or less, -only runs only the runs it names.
//
//	bench [-users N] [-quick] [-ten-users N] [-only main,peer,uuid,many_locations,ten_million,defaults,webhook,policy] [-webhook=false] [-scaling] [-peer=false] [-chart PATH] [-md PATH]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/chime-dev/chime/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	users := fs.Int("users", 1_000_000, "subscribers of the reminder")
	quick := fs.Bool("quick", false, "50,000 users, the named runs smaller, the tuned peer alone on 5,000 users, no scaling runs, no peer webhook run")
	hook := fs.Bool("webhook", true, "also measure delivery through a loopback HTTP webhook receiver")
	scaling := fs.Bool("scaling", false, "also run U = 10k, 100k, 1M and 1, 2, 4 worker processes")
	peer := fs.Bool("peer", true, "run the one-task-per-user peer")
	chart := fs.String("chart", "", "write a PNG chart of deliveries over time to this path")
	md := fs.String("md", "", "write the result table as Markdown to this path")
	workers := fs.Int("workers", 2, "in-process Chime workers (each its own asynq server)")
	groupSize := fs.Int("group-size", 0, "target members per group (0: the engine's, from Redis's set-max-intset-entries; keep ≤ it for compact sets)")
	intset := fs.Int("intset-entries", 0, "set Redis's set-max-intset-entries for the run (restored after) to allow larger compact groups")
	uuids := fs.Bool("uuid", true, "run Chime with UUID-like user IDs (Redis bytes per subscriber)")
	only := fs.String("only", "", "run only these runs, comma-separated: main, peer, uuid, many_locations, ten_million, defaults, webhook, policy")
	verbose := fs.Bool("v", false, "log the engine's warnings")
	tenSize := fs.Int("ten-users", 0, "users of the ten_million run (0: 10,000,000, or 50,000 with -quick)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the first Chime delivery (fire to last delivery) to this file")
	registerProfile := fs.String("register-cpuprofile", "", "write a CPU profile of the main run's registration (this process: API, clients, workers) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *quick {
		// Registration and the peer's delivery were most of the quick
		// run's time at 100,000 users.
		*users, *scaling = 50_000, false
	}
	if *users < 1 {
		return errors.New("-users must be at least 1")
	}
	runs, err := selectRuns(*only)
	if err != nil {
		return err
	}
	manyUsers, manyLocs, tenUsers, runTimeout := 1_000_000, 5_000, 10_000_000, time.Duration(0)
	if *quick {
		// Each named run is cut off after 30s: a slow engine shows as
		// incomplete instead of stretching the quick run.
		manyUsers, manyLocs, tenUsers, runTimeout = 20_000, 100, 50_000, 30*time.Second
	}
	if *tenSize > 0 {
		tenUsers = *tenSize
	}
	cfg := bench.Config{RedisURL: getenv("REDIS_URL"), MySQLDSN: getenv("MYSQL_DSN"), Users: *users, Workers: *workers, GroupSize: *groupSize}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		cfg.Profile = f
	}
	if cfg.RedisURL == "" || cfg.MySQLDSN == "" {
		return errors.New("REDIS_URL and MYSQL_DSN are required (make bench starts servers)")
	}
	if *verbose {
		cfg.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if *intset > 0 {
		restore, err := bench.SetIntsetEntries(ctx, cfg.RedisURL, *intset)
		if err != nil {
			return err
		}
		defer restore()
	}
	mainCfg := cfg
	if *registerProfile != "" {
		f, err := os.Create(*registerProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		mainCfg.RegisterProfile = f
	}
	var rep bench.Report
	rep.Machine = bench.Machine()
	step := func(name string, f func() (bench.Result, error)) error {
		fmt.Fprintf(stderr, "bench: %s...\n", name)
		r, err := f()
		if errors.Is(err, bench.ErrIncomplete) && r.Run != "" {
			// A named run cut short is reported as incomplete; the others
			// still run.
			fmt.Fprintf(stderr, "bench:   %s: %v\n", name, err)
		} else if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(stderr, "bench:   %s\n", r.Summary())
		rep.Results = append(rep.Results, r)
		return nil
	}
	if runs["main"] {
		if err := step("chime, no-op sink", func() (bench.Result, error) { return bench.RunChime(ctx, mainCfg) }); err != nil {
			return err
		}
	}
	if *peer && runs["peer"] {
		pcfg, modes := cfg, []bool{false, true}
		if *quick {
			// The peer delivers a few thousand users a second: at the quick
			// size only its better (tuned) run, on 5,000 users; its
			// deliveries per second are what the ratios use.
			pcfg.Users, modes = min(cfg.Users, 5_000), []bool{true}
		}
		for _, tuned := range modes {
			if err := step(fmt.Sprintf("peer (tuned=%v), no-op sink", tuned), func() (bench.Result, error) { return bench.RunPeer(ctx, pcfg, tuned) }); err != nil {
				return err
			}
		}
	}
	if *uuids && runs["uuid"] {
		ucfg := cfg
		ucfg.Timeout = runTimeout
		ucfg.UUIDs, ucfg.Run = true, "uuid"
		if err := step("uuid: chime, UUID-like IDs, no-op sink", func() (bench.Result, error) { return bench.RunChime(ctx, ucfg) }); err != nil {
			return err
		}
	}
	if runs["defaults"] {
		dcfg := cfg
		dcfg.Timeout = runTimeout
		dcfg.Run, dcfg.EngineDefaults = "defaults", true
		if err := step("defaults: chime on its default settings, no-op sink", func() (bench.Result, error) { return bench.RunChime(ctx, dcfg) }); err != nil {
			return err
		}
	}
	if runs["policy"] {
		pcfg := cfg
		pcfg.Timeout = runTimeout
		pcfg.Run, pcfg.Policy = "policy", true
		if err := step("policy: chime, 10% opted out of the category, 10% in quiet hours, a cap", func() (bench.Result, error) { return bench.RunChime(ctx, pcfg) }); err != nil {
			return err
		}
	}
	if runs["many_locations"] {
		mcfg := cfg
		mcfg.Timeout = runTimeout
		mcfg.Run, mcfg.EngineGroups, mcfg.Sizes = "many_locations", true, bench.ZipfSizes(manyUsers, manyLocs)
		if err := step(fmt.Sprintf("many_locations: %d users over %d locations, no-op sink", manyUsers, manyLocs), func() (bench.Result, error) { return bench.RunChime(ctx, mcfg) }); err != nil {
			return err
		}
	}
	if runs["ten_million"] {
		tcfg := cfg
		tcfg.Timeout = runTimeout
		tcfg.Run, tcfg.EngineGroups, tcfg.Users = "ten_million", true, tenUsers
		if err := step(fmt.Sprintf("ten_million: %d users over 4 locations, no-op sink", tenUsers), func() (bench.Result, error) { return bench.RunChime(ctx, tcfg) }); err != nil {
			return err
		}
	}
	if *hook && runs["webhook"] {
		wcfg := cfg
		wcfg.Webhook = true
		if err := step("chime, webhook", func() (bench.Result, error) { return bench.RunChime(ctx, wcfg) }); err != nil {
			return err
		}
		if *peer && !*quick && runs["peer"] {
			if err := step("peer (tuned), webhook", func() (bench.Result, error) { return bench.RunPeer(ctx, wcfg, true) }); err != nil {
				return err
			}
		}
	}
	if *scaling && *only == "" {
		for _, u := range []int{10_000, 100_000, 1_000_000} {
			scfg := cfg
			scfg.Users = u
			if err := step(fmt.Sprintf("chime scaling, %d users", u), func() (bench.Result, error) { return bench.RunChime(ctx, scfg) }); err != nil {
				return err
			}
		}
		bin := filepath.Join(os.TempDir(), fmt.Sprintf("chime-bench-worker-%d", time.Now().UnixNano()))
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/worker")
		build.Stderr = stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build worker: %w", err)
		}
		defer os.Remove(bin)
		for _, n := range []int{1, 2, 4} {
			pcfg := cfg
			pcfg.WorkerProcs, pcfg.WorkerBin = n, bin
			if err := step(fmt.Sprintf("chime, %d worker processes, webhook", n), func() (bench.Result, error) { return bench.RunChime(ctx, pcfg) }); err != nil {
				return err
			}
		}
	}
	rep.Print(stdout)
	if *md != "" {
		if err := os.WriteFile(*md, []byte(rep.Markdown()), 0o644); err != nil {
			return err
		}
	}
	if *chart != "" {
		if err := rep.Chart(*chart); err != nil {
			return fmt.Errorf("chart: %w", err)
		}
	}
	fmt.Fprintln(stdout, rep.JSON())
	return nil
}

// selectRuns returns the runs -only names, or all of them.
func selectRuns(only string) (map[string]bool, error) {
	all := []string{"main", "peer", "uuid", "many_locations", "ten_million", "defaults", "webhook", "policy"}
	runs := map[string]bool{}
	if only == "" {
		for _, r := range all {
			runs[r] = true
		}
		return runs, nil
	}
	for r := range strings.SplitSeq(only, ",") {
		r = strings.TrimSpace(r)
		if !slices.Contains(all, r) {
			return nil, fmt.Errorf("-only: unknown run %q (runs: %s)", r, strings.Join(all, ", "))
		}
		runs[r] = true
	}
	return runs, nil
}
