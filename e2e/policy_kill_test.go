package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/internal/testenv"
)

// Injects: a reminder of category "marketing" under a cap of one a day,
// delivered by a worker process killed with SIGKILL mid-group (a slow
// receiver makes the kill land while chunks are in flight), finished by a
// second worker process; then a second fire of the reminder. Checks: every
// user is delivered and nobody is counted capped (the chunk repeated after
// the kill finds its users already counted for this occurrence), each
// user's cap holds exactly one entry, duplicates stay within a chunk per
// group; the second fire is capped for every user and delivers nothing.
func TestWorkerKilledMidChunkCountsCapsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a worker process")
	}
	b := setup(t)
	bin := build(t, "worker")
	b.sink.Delay = 20 * time.Millisecond
	const users, groups, chunk = 2000, 8, 50
	b.cfg.ChunkSize = chunk
	b.startCoordinator("c1")
	worker := func(name string) *exec.Cmd {
		return b.startWorkerProcess(bin, name, "CHIME_SENDER=webhook", "CHIME_WEBHOOK_URL="+b.hook, "CHIME_METRICS_ADDR=127.0.0.1:0")
	}
	require.Equal(t, http.StatusOK, b.call(http.MethodPut, "/v1/settings/delivery",
		map[string]any{"frequency_caps": map[string]any{"marketing": map[string]any{"max": 1, "window": "24h"}}}, nil))
	places := []place{{"istanbul", "Europe/Istanbul"}}
	put := func(at time.Time) {
		loc, err := time.LoadLocation("Europe/Istanbul")
		require.NoError(t, err)
		code := b.call(http.MethodPut, "/v1/reminders/promo", map[string]any{
			"title": "Sale", "body": "body", "groups": groups, "valid_for": "5m", "category": "marketing",
			"times": []api.ReminderTime{{Location: "istanbul", Zone: "Europe/Istanbul", LocalTime: at.In(loc).Format("15:04:05")}},
		}, nil)
		require.Contains(t, []int{200, 201}, code)
	}
	first := worker("doomed")
	t.Cleanup(func() { _ = first.Process.Kill(); _, _ = first.Process.Wait() })
	put(time.Now().Add(2 * time.Hour))
	b.register("promo", 8_000_000, users, places)
	fireAt := nextSecond(2 * time.Second)
	put(fireAt)

	testenv.WaitUntil(t, time.Minute, "a third of the users delivered", func() bool { return b.sink.Stats().Users >= users/3 })
	require.NoError(t, first.Process.Signal(os.Kill))
	_, _ = first.Process.Wait()
	killedAt := b.sink.Stats().Users
	require.Less(t, killedAt, users, "the worker finished before it could be killed")
	second := worker("survivor")
	t.Cleanup(func() { _ = second.Process.Signal(os.Interrupt); _, _ = second.Process.Wait() })

	occ := at(b.waitDone("promo", 1, 2*time.Minute), fireAt)
	require.Len(t, occ, 1)
	require.Equal(t, users, b.sink.Stats().Users, "every user delivered")
	require.EqualValues(t, users, occ[0].Delivered)
	require.Zero(t, occ[0].Capped, "nobody capped by the chunk repeated after the kill")
	dups := 0
	for i := range users {
		if n := b.sink.Count(strconv.Itoa(8_000_000 + i)); n > 1 {
			dups += n - 1
		}
	}
	require.LessOrEqual(t, dups, groups*chunk, "duplicates beyond a chunk per group")
	t.Logf("killed after %d of %d users; %d duplicate deliveries", killedAt, users, dups)

	// Each user's cap counts this occurrence once.
	ctx := context.Background()
	var keys []string
	iter := b.env.Redis.Scan(ctx, 0, b.env.Prefix+"*:cap:marketing", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	require.NoError(t, iter.Err())
	counted := 0
	for _, k := range keys {
		fields, err := b.env.Redis.HGetAll(ctx, k).Result()
		require.NoError(t, err)
		for u, v := range fields {
			if strings.HasPrefix(u, " ") {
				continue // the hash's own marker; user IDs hold no spaces
			}
			require.Equal(t, 1, strings.Count(v, "@"), "user %s: %s", u, v)
			counted++
		}
	}
	require.Equal(t, users, counted, "every user counted")

	// The next fire of the category is over the cap for everyone.
	before := b.sink.Stats().Deliveries
	next := nextSecond(2 * time.Second)
	put(next)
	occ = at(b.waitDone("promo", 2, 2*time.Minute), next)
	require.Len(t, occ, 1)
	require.EqualValues(t, users, occ[0].Capped)
	require.Zero(t, occ[0].Delivered)
	require.Equal(t, before, b.sink.Stats().Deliveries, "nothing sent over the cap")
}
