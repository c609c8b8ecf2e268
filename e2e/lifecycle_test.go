package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/store"
)

// build compiles the repository's cmd/<name> into the test's temporary directory.
func build(t *testing.T, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/"+name)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Run())
	return bin
}

// proc is a Chime process started by a test.
type proc struct {
	cmd    *exec.Cmd
	exited chan error
	log    *testenv.Output // its stderr, also copied to the test's
}

// spawn starts bin as replica name with the bundle's configuration plus
// extra environment, and kills it when the test ends.
func (b *bundle) spawn(bin, name string, extra ...string) *proc {
	b.t.Helper()
	return b.spawnArgs(bin, nil, name, extra...)
}

// spawnArgs is spawn with command-line arguments.
func (b *bundle) spawnArgs(bin string, args []string, name string, extra ...string) *proc {
	b.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"REDIS_URL="+b.cfg.RedisURL, "MYSQL_DSN="+b.env.DSN, "CHIME_REDIS_PREFIX="+b.env.Prefix,
		"CHIME_QUEUE="+b.env.Queue, "CHIME_SENDER=webhook", "CHIME_WEBHOOK_URL="+b.hook,
		"CHIME_CHUNK_SIZE="+strconv.Itoa(b.cfg.ChunkSize), "CHIME_LEASE_TTL="+b.cfg.LeaseTTL.String(),
		"CHIME_ACK_TIMEOUT="+b.cfg.AckTimeout.String(), "CHIME_PREPARE_LEAD="+b.cfg.PrepareLead.String(),
		"CHIME_PLAN_INTERVAL="+b.cfg.PlanInterval.String(), "CHIME_MIGRATE=false",
		"CHIME_REPLICA_ID="+name, "CHIME_LOG_LEVEL=info", "CHIME_METRICS_ADDR=127.0.0.1:0")
	cmd.Env = append(cmd.Env, extra...)
	p := &proc{cmd: cmd, exited: make(chan error, 1), log: &testenv.Output{}}
	cmd.Stdout, cmd.Stderr = os.Stderr, io.MultiWriter(os.Stderr, p.log)
	require.NoError(b.t, cmd.Start())
	go func() { p.exited <- cmd.Wait() }()
	b.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited //nolint:errcheck // waits for the killed process to exit
	})
	return p
}

// waitExit waits for p to exit and returns its exit code.
func (p *proc) waitExit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	var err error
	testenv.WaitUntil(t, timeout, "the process to exit", func() bool {
		select {
		case err = <-p.exited:
			p.exited <- err // for the cleanup
			return true
		default:
			return false
		}
	})
	if err == nil {
		return 0
	}
	ee, ok := err.(*exec.ExitError)
	require.True(t, ok, "wait: %v", err)
	return ee.ExitCode()
}

// leader returns the replica that holds the leader lock, "" if none.
func (b *bundle) leader() string {
	return b.env.Redis.Get(context.Background(), b.env.Prefix+"leader").Val()
}

// loopbackAddr returns a loopback address nothing listens on right now.
func loopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// startCoordinatorProcess starts a coordinator process and waits until its
// API answers; it returns the process and the API's URL.
func (b *bundle) startCoordinatorProcess(bin, name string, extra ...string) (*proc, string) {
	b.t.Helper()
	addr := loopbackAddr(b.t)
	p := b.spawn(bin, name, append([]string{"CHIME_HTTP_ADDR=" + addr}, extra...)...)
	url := "http://" + addr
	testenv.WaitUntil(b.t, 30*time.Second, name+"'s API", func() bool {
		resp, err := http.Get(url + "/v1/openapi.yaml")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p, url
}

// Fault: a worker process gets SIGTERM while it is in the middle of its
// groups (as Kubernetes does on a scale-down or a rollout). Checked: it exits
// cleanly within its shutdown timeout, having finished and checkpointed the
// chunks in hand and released its groups; another worker takes them over at
// once (the ack timeout is a minute, so the reaper plays no part: every run
// stays at attempt 1) and resumes them at their checkpoints, so every user
// is delivered exactly once.
func TestWorkerSIGTERMReleasesItsGroups(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and stops a worker process")
	}
	b := setup(t)
	bin := build(t, "worker")
	b.sink.Delay = 20 * time.Millisecond
	const users, groups = 3000, 8
	b.cfg.ChunkSize = 50
	b.cfg.AckTimeout = time.Minute
	b.startCoordinator("c1")
	draining := b.spawn(bin, "draining", "CHIME_WORKER_CONCURRENCY=4", "CHIME_SHUTDOWN_TIMEOUT=10s")

	places := []place{{"istanbul", "Europe/Istanbul"}}
	b.putReminder("isha", groups, time.Now().Add(2*time.Hour), places)
	b.register("isha", 12_000_000, users, places)
	fireAt := nextSecond(2 * time.Second)
	b.putReminder("isha", groups, fireAt, places)

	testenv.WaitUntil(t, time.Minute, "a quarter of the users delivered", func() bool { return b.sink.Stats().Users >= users/4 })
	require.NoError(t, draining.cmd.Process.Signal(os.Interrupt))
	require.Zero(t, draining.waitExit(t, 15*time.Second), "a stopping worker exits cleanly")
	stoppedAt := b.sink.Stats().Users
	require.Less(t, stoppedAt, users, "the worker finished before it was stopped")
	released := strings.Count(draining.log.String(), "worker stopping; group released")
	require.Positive(t, released, "the stopping worker released the groups in hand")
	t.Logf("stopped the worker after %d of %d users; it released %d groups", stoppedAt, users, released)

	b.startWorker("survivor")
	occ := at(b.waitDone("isha", 1, 45*time.Second), fireAt)
	require.Len(t, occ, 1)
	st := b.sink.Stats()
	require.Equal(t, users, st.Users, "every user delivered")
	require.Zero(t, st.Duplicates, "the chunks in hand were checkpointed, so nothing is sent twice")
	require.EqualValues(t, users, occ[0].Delivered)

	var runs []store.GroupRun
	require.NoError(t, b.env.DB.Where("occurrence_id = ?", occ[0].ID).Find(&runs).Error)
	bySurvivor := 0
	for _, r := range runs {
		require.Equal(t, 1, r.Attempts, "group %d was requeued by the reaper, not released", r.GroupNo)
		if r.Worker == "survivor" {
			bySurvivor++
		}
	}
	require.Positive(t, bySurvivor, "the other worker finished the released groups")
	t.Logf("groups finished by the other worker: %d of %d", bySurvivor, len(runs))
}

// putTimes defines reminder key with one location per entry of at, each
// firing at its own instant (same zone, different local times).
func (b *bundle) putTimes(key string, groups int, zone string, at []time.Time) {
	b.t.Helper()
	loc, err := time.LoadLocation(zone)
	require.NoError(b.t, err)
	var times []api.ReminderTime
	for i, t := range at {
		times = append(times, api.ReminderTime{Location: fmt.Sprintf("%s-%d", key, i), Zone: zone, LocalTime: t.In(loc).Format("15:04:05")})
	}
	code := b.call(http.MethodPut, "/v1/reminders/"+key, map[string]any{
		"title": "Test " + key, "body": "body", "groups": groups, "valid_for": "5m", "times": times,
	}, nil)
	require.Contains(b.t, []int{200, 201}, code)
}

// Fault: the leading coordinator process is killed with SIGKILL (no chance
// to release its lock) while a reminder fires at six instants a second
// apart around the kill. Checked: the other coordinator takes over once the
// dead leader's lock expires (within the lock TTL plus one campaign period),
// and every fire reaches every user exactly once: none lost in the gap,
// none doubled by the overlap.
func TestLeaderKilledAnotherTakesOver(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills coordinator processes")
	}
	b := setup(t)
	bin := build(t, "coordinator")
	b.cfg.AckTimeout = 5 * time.Second
	const ttl = 2 * time.Second
	lease := "CHIME_LEADER_TTL=" + ttl.String()
	first, _ := b.startCoordinatorProcess(bin, "c1", lease)
	testenv.WaitUntil(t, 10*time.Second, "c1 to lead", func() bool { return b.leader() == "c1" })
	_, url := b.startCoordinatorProcess(bin, "c2", lease)
	b.apiURL = url // the survivor's API
	b.startWorker("w1")
	b.startWorker("w2")

	const fires, perPlace = 6, 500
	far := make([]time.Time, fires)
	for i := range far {
		far[i] = time.Now().Add(2 * time.Hour)
	}
	b.putTimes("around", 8, "Europe/Paris", far)
	places := make([]place, fires)
	for i := range places {
		places[i] = place{fmt.Sprintf("around-%d", i), "Europe/Paris"}
	}
	per := b.register("around", 13_000_000, fires*perPlace, places)
	start := nextSecond(3 * time.Second)
	instants := make([]time.Time, fires)
	for i := range instants {
		instants[i] = start.Add(time.Duration(i) * time.Second)
	}
	b.putTimes("around", 8, "Europe/Paris", instants)

	// Kill the leader between the second and the third instant.
	killAt := instants[1].Add(500 * time.Millisecond)
	testenv.WaitUntil(t, 30*time.Second, "the kill instant", func() bool { return !time.Now().Before(killAt) })
	require.Equal(t, "c1", b.leader())
	require.NoError(t, first.cmd.Process.Signal(os.Kill))
	first.waitExit(t, 10*time.Second)
	killed := time.Now()
	testenv.WaitUntil(t, ttl+ttl/3+2*time.Second, "c2 to take over", func() bool { return b.leader() == "c2" })
	t.Logf("c2 leads %v after the kill", time.Since(killed).Round(10*time.Millisecond))

	occ := b.waitDone("around", fires, time.Minute)
	st := b.sink.Stats()
	require.Equal(t, fires*perPlace, st.Users, "every user delivered")
	require.Zero(t, st.Duplicates, "no fire doubled")
	for i, instant := range instants {
		o := at(occ, instant)
		require.Len(t, o, 1, "instant %d fired once", i)
		require.Equal(t, "done", o[0].State)
		require.EqualValues(t, per[o[0].Location], o[0].Delivered, o[0].Location)
		require.EqualValues(t, perPlace, st.ByLocation[o[0].Location])
		t.Logf("instant %d (%s): fired %dms late", i, o[0].Location, *o[0].LateMs)
	}
}

// A leading coordinator that gets SIGTERM (a rollout) deletes its lock and
// says so on Redis, and the other replica takes over at once, not after the
// lock's TTL (30s here) or a campaign period (10s). A reminder due right
// after the handover is delivered to every user once.
func TestLeaderSIGTERMHandsOverAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and stops coordinator processes")
	}
	b := setup(t)
	bin := build(t, "coordinator")
	b.cfg.AckTimeout = 5 * time.Second
	lease := "CHIME_LEADER_TTL=30s"
	first, _ := b.startCoordinatorProcess(bin, "c1", lease)
	testenv.WaitUntil(t, 10*time.Second, "c1 to lead", func() bool { return b.leader() == "c1" })
	_, url := b.startCoordinatorProcess(bin, "c2", lease)
	b.apiURL = url
	b.startWorker("w1")

	places := []place{{"lagos", "Africa/Lagos"}}
	const users = 1000
	b.putReminder("handover", 8, time.Now().Add(2*time.Hour), places)
	b.register("handover", 14_000_000, users, places)

	require.NoError(t, first.cmd.Process.Signal(os.Interrupt))
	require.Zero(t, first.waitExit(t, 25*time.Second))
	exited := time.Now()
	testenv.WaitUntil(t, 3*time.Second, "c2 to take over", func() bool { return b.leader() == "c2" })
	t.Logf("c2 leads %v after c1 exited", time.Since(exited).Round(time.Millisecond))

	fireAt := nextSecond(2 * time.Second)
	b.putReminder("handover", 8, fireAt, places)
	occ := at(b.waitDone("handover", 1, 30*time.Second), fireAt)
	require.Len(t, occ, 1)
	st := b.sink.Stats()
	require.Equal(t, users, st.Users)
	require.Zero(t, st.Duplicates)
}
