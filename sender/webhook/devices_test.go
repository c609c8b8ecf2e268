package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/netguard"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/sender/webhook"
	"github.com/chime-dev/chime/sender/webhook/webhooktest"
)

// loopback opens the loopback range, where the test receivers listen, as
// CHIME_WEB_DEVICE_ALLOW_CIDRS=127.0.0.0/8,::1/128 does.
var loopback = netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")})

// Each web device's notification goes to its own endpoint signed with that
// endpoint's secret; the receiver verifies with the specification's library.
// Injected answers (410, 429 with Retry-After, 503, 400) and a device whose
// secret is not the endpoint's come back as the outcomes push acts on.
func TestDevicesDeliverSignedPerEndpoint(t *testing.T) {
	rcv := webhooktest.New(false)
	t.Cleanup(rcv.Close)
	d := webhook.NewDevices(webhook.DevicesConfig{Guard: loopback}, testenv.Logger(t))
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

// Endpoints a tenant registers cannot reach the operator's network. The
// receiver listens on loopback and the channel has the default policy:
// notifications to it by address (http://127.0.0.1:<port>) and by a name
// that resolves to loopback ("localhost") fail as "endpoint refused:
// address not allowed" without being retried, the receiver gets no
// request, and the tenant-visible reason does not carry the dial error,
// which is logged for the operator instead.
func TestDevicesRefuseEndpointsOffTheInternet(t *testing.T) {
	rcv := webhooktest.New(false)
	t.Cleanup(rcv.Close)
	var logs testenv.Output
	d := webhook.NewDevices(webhook.DevicesConfig{}, slog.New(slog.NewTextHandler(&logs, nil)))
	url, secret := rcv.Endpoint("internal")
	byName := strings.Replace(url, "127.0.0.1", "localhost", 1)
	out := d.Deliver(context.Background(), []sender.Notification{
		{ID: "msg_addr", Token: url, Secret: secret, Title: "Fajr"},
		{ID: "msg_name", Token: byName, Secret: secret, Title: "Fajr"},
	})
	refused := sender.Outcome{Status: sender.Failed, Reason: webhook.ReasonRefused}
	require.Equal(t, []sender.Outcome{refused, refused}, out)
	accepted, unverified := rcv.Counts()
	require.Zero(t, accepted+unverified, "the receiver got no request")
	require.Contains(t, logs.String(), "address not allowed")
	require.Contains(t, logs.String(), "host=localhost:")
}

// A connection that fails (a closed port on loopback, opened by the
// allow-list) is retried with a generic reason: "connection refused", which
// tells a closed port from an open one, is only in the operator's log.
func TestDevicesHideConnectionErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + ln.Addr().String() + "/hook"
	require.NoError(t, ln.Close())
	var logs testenv.Output
	d := webhook.NewDevices(webhook.DevicesConfig{Guard: loopback}, slog.New(slog.NewTextHandler(&logs, nil)))
	out := d.Deliver(context.Background(), []sender.Notification{{ID: "msg_1", Token: closed, Secret: webhook.NewSecret()}})
	require.Equal(t, []sender.Outcome{{Status: sender.Retry, Reason: webhook.ReasonConnection}}, out)
	require.Contains(t, logs.String(), "connection refused")
}

// Redirects are not followed: an allowed endpoint that answers 302 to
// another allowed endpoint fails with "http 302: redirects are not
// followed", and the second endpoint gets no request.
func TestDevicesDoNotFollowRedirects(t *testing.T) {
	rcv := webhooktest.New(false)
	t.Cleanup(rcv.Close)
	target, secret := rcv.Endpoint("target")
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusFound)
	}))
	t.Cleanup(redirect.Close)
	d := webhook.NewDevices(webhook.DevicesConfig{Guard: loopback}, testenv.Logger(t))
	out := d.Deliver(context.Background(), []sender.Notification{
		{ID: "msg_1", Token: redirect.URL + "/hook", Secret: secret, Title: "Fajr"},
		{ID: "msg_2", Token: "ftp://example.com/hook", Secret: secret},
	})
	require.Equal(t, []sender.Outcome{
		{Status: sender.Failed, Reason: "http 302: " + webhook.ReasonRedirect},
		{Status: sender.Invalid, Reason: "bad endpoint URL"},
	}, out)
	accepted, unverified := rcv.Counts()
	require.Zero(t, accepted+unverified, "the redirect's target got no request")
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
	d := webhook.NewDevices(webhook.DevicesConfig{Guard: loopback}, slog.New(slog.DiscardHandler))
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
