package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/sender/webhook"
	"github.com/chime-dev/chime/sender/webhook/webhooktest"
)

// Each web device's notification goes to its own endpoint signed with that
// endpoint's secret; the receiver verifies with the specification's library.
// Injected answers (410, 429 with Retry-After, 503, 400) and a device whose
// secret is not the endpoint's come back as the outcomes push acts on.
func TestDevicesDeliverSignedPerEndpoint(t *testing.T) {
	rcv := webhooktest.New(false)
	t.Cleanup(rcv.Close)
	d := webhook.NewDevices(webhook.DevicesConfig{})
	names := []string{"ok", "gone", "busy", "down", "bad", "wrong-secret"}
	ns := make([]sender.Notification, len(names))
	for i, n := range names {
		url, secret := rcv.Endpoint(n)
		ns[i] = sender.Notification{ID: "msg_" + n, Token: url, Secret: secret, Title: "Fajr", Body: "in 10 minutes",
			Data: map[string]string{"reminder": "fajr"}}
	}
	ns[5].Secret = webhook.NewSecret()
	rcv.Gone("gone")
	rcv.Fail("busy", webhooktest.Fault{Status: 429, RetryAfter: 2})
	rcv.Fail("down", webhooktest.Fault{Status: 503})
	rcv.Fail("bad", webhooktest.Fault{Status: 400})
	out := d.Deliver(context.Background(), ns)
	require.Equal(t, []sender.Outcome{
		{Status: sender.Sent},
		{Status: sender.Invalid, Reason: "http 410"},
		{Status: sender.Retry, Reason: "http 429", RetryAfter: 2 * time.Second},
		{Status: sender.Retry, Reason: "http 503"},
		{Status: sender.Failed, Reason: "http 400"},
		{Status: sender.Failed, Reason: "http 401"},
	}, out)
	ev := rcv.Events("ok")
	require.Len(t, ev, 1)
	require.Equal(t, webhook.EventType, ev[0].Type)
	require.Equal(t, webhook.EventData{ID: "msg_ok", Title: "Fajr", Body: "in 10 minutes", Data: map[string]string{"reminder": "fajr"}}, ev[0].Data)
	_, unverified := rcv.Counts()
	require.Equal(t, 1, unverified, "only the device with the wrong secret failed verification")
}

// The chunk mode signs each POST when it has a secret: webhook-id is the
// chunk's idempotency key, and the specification's library verifies it,
// also on a retry after a 503.
func TestChunkModeIsSigned(t *testing.T) {
	secret := webhook.NewSecret()
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	var mu sync.Mutex
	var ids []string
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls++
		if err := wh.Verify(body, r.Header); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if calls == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var p webhook.Payload
		if json.Unmarshal(body, &p) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		ids = append(ids, r.Header.Get("webhook-id")+"/"+strconv.Itoa(len(p.Users)))
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	s, err := webhook.New(webhook.Config{URL: srv.URL, Secret: secret, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	res, err := s.Send(context.Background(), &sender.Batch{Occurrence: 1, Users: []string{"a", "b"}, IdempotencyKey: "1-0-a"})
	require.NoError(t, err)
	require.Zero(t, res.Failed)
	require.Equal(t, []string{"1-0-a/2"}, ids)
	require.Equal(t, 2, calls)

	_, err = webhook.New(webhook.Config{URL: srv.URL, Secret: "not-a-secret"}, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "whsec_")
}

// BenchmarkDevicesDeliver measures signed webhooks per second to a local
// receiver that verifies each signature, 1,000 per operation over 10
// endpoints.
func BenchmarkDevicesDeliver(b *testing.B) {
	rcv := webhooktest.New(true)
	b.Cleanup(rcv.Close)
	d := webhook.NewDevices(webhook.DevicesConfig{})
	ns := make([]sender.Notification, 1000)
	for i := range ns {
		url, secret := rcv.Endpoint(strconv.Itoa(i % 10))
		ns[i] = sender.Notification{ID: "msg_" + strconv.Itoa(i), Token: url, Secret: secret, Title: "Fajr", Body: "in 10 minutes"}
	}
	ctx := context.Background()
	b.ResetTimer()
	start, cpu := time.Now(), testenv.CPUTime()
	for range b.N {
		for i, o := range d.Deliver(ctx, ns) {
			if o.Status != sender.Sent {
				b.Fatalf("notification %d: %+v", i, o)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(ns))/time.Since(start).Seconds(), "deliveries/s")
	b.ReportMetric(float64(b.N*len(ns))/(testenv.CPUTime()-cpu).Seconds(), "deliveries/cpu-s")
}
