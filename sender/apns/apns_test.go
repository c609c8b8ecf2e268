package apns_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/sideshow/apns2"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/sender/apns"
	"github.com/chime-dev/chime/sender/apns/apnstest"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		resp   *apns2.Response
		err    error
		status sender.Status
		reason string
	}{
		{"sent", &apns2.Response{StatusCode: 200}, nil, sender.Sent, ""},
		{"unregistered", &apns2.Response{StatusCode: 410, Reason: "Unregistered"}, nil, sender.Invalid, "Unregistered"},
		{"bad token", &apns2.Response{StatusCode: 400, Reason: "BadDeviceToken"}, nil, sender.Invalid, "BadDeviceToken"},
		{"other topic", &apns2.Response{StatusCode: 400, Reason: "DeviceTokenNotForTopic"}, nil, sender.Invalid, "DeviceTokenNotForTopic"},
		{"too many", &apns2.Response{StatusCode: 429, Reason: "TooManyRequests"}, nil, sender.Retry, "TooManyRequests"},
		{"internal", &apns2.Response{StatusCode: 500, Reason: "InternalServerError"}, nil, sender.Retry, "InternalServerError"},
		{"unavailable", &apns2.Response{StatusCode: 503, Reason: "ServiceUnavailable"}, nil, sender.Retry, "ServiceUnavailable"},
		{"expired provider token", &apns2.Response{StatusCode: 403, Reason: "ExpiredProviderToken"}, nil, sender.Retry, "ExpiredProviderToken"},
		{"payload too large", &apns2.Response{StatusCode: 413, Reason: "PayloadTooLarge"}, nil, sender.Failed, "PayloadTooLarge"},
		{"no reason", &apns2.Response{StatusCode: 400}, nil, sender.Failed, "http 400"},
		{"network", nil, errors.New("connection refused"), sender.Retry, "network: connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := apns.Classify(tc.resp, tc.err)
			require.Equal(t, tc.status, o.Status)
			require.Equal(t, tc.reason, o.Reason)
		})
	}
}

type fixture struct {
	srv *apnstest.Server
	ch  *apns.Channel
}

func setup(t testing.TB, discard bool) fixture {
	key, pub, err := apnstest.NewKey()
	require.NoError(t, err)
	srv := apnstest.New(apnstest.Config{Key: pub, KeyID: "KEY1234567", TeamID: "TEAM123456", Topic: "dev.chime.app", Discard: discard})
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(srv.CertPEM()))
	ch, err := apns.New(apns.Config{Key: key, KeyID: "KEY1234567", TeamID: "TEAM123456", Topic: "dev.chime.app",
		Host: srv.URL, RootCAs: roots, Conns: 2})
	require.NoError(t, err)
	return fixture{srv: srv, ch: ch}
}

func token(i int) string { return fmt.Sprintf("%064x", i+1) }

// Against the local server: accepted notifications arrive with their text,
// topic and apns-id, and each injected APNs error comes back as the outcome
// the push channel acts on.
func TestDeliverAgainstLocalServer(t *testing.T) {
	f := setup(t, false)
	f.srv.Unregister(token(1))
	f.srv.Fail(token(2), apnstest.BadDeviceToken)
	f.srv.Fail(token(3), apnstest.TooManyRequests)
	f.srv.Fail(token(4), apnstest.ServiceUnavailable)
	f.srv.Fail(token(5), apnstest.InternalServerError)
	ns := make([]sender.Notification, 7)
	for i := range ns {
		ns[i] = sender.Notification{ID: uuid.NewString(), Token: token(i), Title: "Fajr", Body: "in 10 minutes",
			Data: map[string]string{"reminder": "fajr"}, ExpiresAt: time.Now().Add(10 * time.Minute)}
	}
	ns[6].Token = "not-hex"
	out := f.ch.Deliver(context.Background(), ns)
	want := []sender.Status{sender.Sent, sender.Invalid, sender.Invalid, sender.Retry, sender.Retry, sender.Retry, sender.Invalid}
	for i, o := range out {
		require.Equal(t, want[i], o.Status, "notification %d: %+v", i, o)
	}
	require.Equal(t, "Unregistered", out[1].Reason)
	require.Equal(t, "BadDeviceToken", out[2].Reason)
	require.Equal(t, "TooManyRequests", out[3].Reason)
	require.Equal(t, "ServiceUnavailable", out[4].Reason)
	require.Equal(t, "BadDeviceToken", out[6].Reason)

	got := f.srv.Pushes(token(0))
	require.Len(t, got, 1)
	require.Equal(t, "dev.chime.app", got[0].Topic)
	require.Equal(t, "alert", got[0].PushType)
	require.Equal(t, ns[0].ID, got[0].ID)
	aps := got[0].Payload["aps"].(map[string]any)
	require.Equal(t, map[string]any{"title": "Fajr", "body": "in 10 minutes"}, aps["alert"])
	require.Equal(t, "fajr", got[0].Payload["reminder"])

	// The faults were one-shot: a second attempt at the transient ones succeeds.
	out = f.ch.Deliver(context.Background(), ns[3:6])
	for _, o := range out {
		require.Equal(t, sender.Sent, o.Status)
	}
}

// A provider token signed with another key is refused with 403
// InvalidProviderToken, which the channel treats as transient (the
// configuration must be fixed; nothing about the device is known).
func TestWrongSigningKeyIsRefused(t *testing.T) {
	f := setup(t, false)
	other, _, err := apnstest.NewKey()
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(f.srv.CertPEM())
	ch, err := apns.New(apns.Config{Key: other, KeyID: "KEY1234567", TeamID: "TEAM123456", Topic: "dev.chime.app", Host: f.srv.URL, RootCAs: roots})
	require.NoError(t, err)
	out := ch.Deliver(context.Background(), []sender.Notification{{Token: token(0), Title: "t", Body: "b"}})
	require.Equal(t, sender.Outcome{Status: sender.Retry, Reason: "InvalidProviderToken"}, out[0])
	accepted, rejected := f.srv.Counts()
	require.Zero(t, accepted)
	require.Equal(t, 1, rejected)
}

// BenchmarkDeliver measures notifications per second through the channel to
// the local HTTP/2 server, 1,000 per operation.
func BenchmarkDeliver(b *testing.B) {
	f := setup(b, true)
	ns := make([]sender.Notification, 1000)
	for i := range ns {
		ns[i] = sender.Notification{ID: uuid.NewString(), Token: token(i), Title: "Fajr", Body: "in 10 minutes"}
	}
	ctx := context.Background()
	b.ResetTimer()
	start, cpu := time.Now(), testenv.CPUTime()
	for range b.N {
		for i, o := range f.ch.Deliver(ctx, ns) {
			if o.Status != sender.Sent {
				b.Fatalf("notification %d: %+v", i, o)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(ns))/time.Since(start).Seconds(), "deliveries/s")
	b.ReportMetric(float64(b.N*len(ns))/(testenv.CPUTime()-cpu).Seconds(), "deliveries/cpu-s")
}
