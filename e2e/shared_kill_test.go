package e2e

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/store"
)

// Fault: a worker process is killed with SIGKILL while it delivers tasks
// that carry several small groups (24 locations of 100 users at one
// instant: four groups a task). Checked: every user is still delivered,
// the occurrences all finish, and no group repeats more than one chunk:
// the killed task's finished groups stay finished, the group in hand
// resumes at its checkpoint, and those not started are delivered by the
// retry or the reaper.
func TestWorkerKilledMidSharedTaskLosesNoUser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a worker process")
	}
	b := setup(t)
	bin := build(t, "worker")
	b.sink.Delay = 20 * time.Millisecond
	const perPlace, chunk = 100, 10
	b.cfg.ChunkSize = chunk
	b.startCoordinator("c1")
	worker := func(name string) *exec.Cmd {
		return b.startWorkerProcess(bin, name, "CHIME_SENDER=webhook", "CHIME_WEBHOOK_URL="+b.hook, "CHIME_METRICS_ADDR=127.0.0.1:0")
	}
	first := worker("doomed")
	t.Cleanup(func() { _ = first.Process.Kill(); _, _ = first.Process.Wait() })

	var places []place
	for i := range 24 {
		z := fourZones[i%len(fourZones)]
		places = append(places, place{"city-" + strconv.Itoa(i), z.zone})
	}
	users := perPlace * len(places)
	b.putReminder("shared", 1, time.Now().Add(2*time.Hour), places)
	b.register("shared", 8_000_000, users, places)
	fireAt := nextSecond(2 * time.Second)
	b.putReminder("shared", 1, fireAt, places)

	testenv.WaitUntil(t, time.Minute, "a third of the users delivered", func() bool { return b.sink.Stats().Users >= users/3 })
	require.NoError(t, first.Process.Signal(os.Kill))
	_, _ = first.Process.Wait()
	killedAt := b.sink.Stats().Users
	require.Less(t, killedAt, users, "the worker finished before it could be killed")
	t.Logf("killed the worker after %d of %d users", killedAt, users)

	second := worker("survivor")
	t.Cleanup(func() { _ = second.Process.Signal(os.Interrupt); _, _ = second.Process.Wait() })

	occ := at(b.waitDone("shared", len(places), 2*time.Minute), fireAt)
	require.Len(t, occ, len(places))
	st := b.sink.Stats()
	require.Equal(t, users, st.Users, "every user delivered")
	for _, o := range occ {
		require.EqualValues(t, perPlace, o.Delivered, o.Location)
	}
	// Each location is one group: its repeats are bounded by one chunk.
	for i := range users {
		u := strconv.Itoa(8_000_000 + i)
		require.LessOrEqual(t, b.sink.Count(u), 2, "user %s", u)
	}
	require.LessOrEqual(t, st.Duplicates, chunk*4, "at most a chunk per group in hand (4 at a time)")
	var requeued int64
	require.NoError(t, b.env.DB.Model(&store.GroupRun{}).Where("attempts > 1").Count(&requeued).Error)
	t.Logf("duplicates: %d; groups queued again: %d", st.Duplicates, requeued)
}
