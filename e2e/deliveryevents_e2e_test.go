package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/deliveryevent"
	"github.com/chime-dev/chime/deliveryevent/deliveryeventtest"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/store"
)

// Fault: the app's events endpoint refuses its first POSTs (503), and a
// worker process is killed with SIGKILL in the middle of its groups, so
// that chunks are sent again by the worker that takes them over and the
// dead worker's taken events are claimed by the other's dispatcher.
// Checked: every user's delivered event arrives, each user's under one ID
// (EventID of app, occurrence, user and type), every POST verifies with the
// Standard Webhooks library, the copies are bounded by one chunk per
// group, and another app's endpoint receives nothing.
func TestDeliveryEventsSurviveAKilledWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a worker process")
	}
	b := setup(t)
	b.cfg.SecretKeys = secretKeys
	b.cfg.Push.WebDeviceAllowCIDRs = "127.0.0.0/8"
	bin := build(t, "worker")
	b.sink.Delay = 20 * time.Millisecond
	const users, groups, chunk = 2000, 8, 50
	b.cfg.ChunkSize = chunk
	b.startCoordinator("c1")

	ra, rother := deliveryeventtest.New(), deliveryeventtest.New()
	t.Cleanup(ra.Close)
	t.Cleanup(rother.Close)
	ra.Refuse(5)
	require.Equal(t, http.StatusCreated, b.call("PUT", "/v1/delivery-events/endpoint", map[string]any{"url": ra.URL(), "secret": ra.Secret()}, nil))
	var app store.App
	require.NoError(t, b.env.DB.Where("name = ?", "test").First(&app).Error)
	other, _, err := api.CreateApp(context.Background(), b.env.DB, "other")
	require.NoError(t, err)
	keyring, err := seal.Parse(secretKeys)
	require.NoError(t, err)
	sealed, err := keyring.Seal([]byte(rother.Secret()), store.DeliveryEventSecretAAD(other.ID))
	require.NoError(t, err)
	_, err = store.PutDeliveryEventEndpoint(context.Background(), b.env.DB, store.DeliveryEventEndpoint{AppID: other.ID, URL: rother.URL(), Secret: sealed})
	require.NoError(t, err)

	worker := func(name string) *exec.Cmd {
		return b.startWorkerProcess(bin, name, "CHIME_SENDER=webhook", "CHIME_WEBHOOK_URL="+b.hook, "CHIME_METRICS_ADDR=127.0.0.1:0",
			"CHIME_SECRET_KEYS="+secretKeys, "CHIME_WEB_DEVICE_ALLOW_CIDRS=127.0.0.0/8", "CHIME_DELIVERY_EVENTS_CLAIM_IDLE=2s")
	}
	first := worker("doomed")
	t.Cleanup(func() { _ = first.Process.Kill(); _, _ = first.Process.Wait() })
	places := []place{{"istanbul", "Europe/Istanbul"}}
	b.putReminder("isha", groups, time.Now().Add(2*time.Hour), places)
	b.register("isha", 5_000_000, users, places)
	fireAt := nextSecond(2 * time.Second)
	b.putReminder("isha", groups, fireAt, places)

	testenv.WaitUntil(t, time.Minute, "a third of the users delivered", func() bool { return b.sink.Stats().Users >= users/3 })
	require.NoError(t, first.Process.Signal(os.Kill))
	_, _ = first.Process.Wait()
	require.Less(t, b.sink.Stats().Users, users, "the worker finished before it could be killed")
	second := worker("survivor")
	t.Cleanup(func() { _ = second.Process.Signal(os.Interrupt); _, _ = second.Process.Wait() })

	fired := at(b.waitDone("isha", 1, 2*time.Minute), fireAt)
	require.Len(t, fired, 1)
	occ := fired[0].ID
	testenv.WaitUntil(t, time.Minute, "every user's delivered event posted", func() bool { return ra.Stats().Distinct >= users })
	st := ra.Stats()
	t.Logf("endpoint: %+v", st)
	require.Equal(t, users, st.Distinct, "one event ID per user")
	require.Zero(t, st.Unverified)
	require.Zero(t, st.Mismatched)
	require.LessOrEqual(t, st.Copies, groups*chunk, "copies beyond one chunk per group")
	for id, e := range ra.Events() {
		require.Equal(t, deliveryevent.Delivered, e.Type)
		require.Equal(t, occ, e.Occurrence)
		require.Equal(t, deliveryevent.EventID(app.ID, occ, e.User, e.Type), id)
		n, err := strconv.Atoi(e.User)
		require.NoError(t, err)
		require.True(t, n >= 5_000_000 && n < 5_000_000+users, e.User)
	}
	require.Zero(t, rother.Stats().Posts, "another app's endpoint got this app's events")
}
