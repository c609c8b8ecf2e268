package fcm_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/sender/fcm"
	"github.com/chime-dev/chime/sender/fcm/fcmtest"
)

func setup(t testing.TB, discard bool) (*fcmtest.Server, *fcm.Channel) {
	srv, err := fcmtest.New("chime-test", discard)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	ch, err := fcm.New(context.Background(), fcm.Config{ProjectID: "chime-test", Credentials: srv.ServiceAccount(), Endpoint: srv.Endpoint()})
	require.NoError(t, err)
	return srv, ch
}

func token(i int) string { return fmt.Sprintf("fcm-token-%06d:APA91b", i) }

// Against the local server: the SDK gets an access token with the service
// account, messages arrive with their text, data and TTL, and each injected
// FCM error comes back as the outcome the push channel acts on. A single 503
// is retried by the SDK itself and ends sent.
func TestDeliverAgainstLocalServer(t *testing.T) {
	srv, ch := setup(t, false)
	srv.Unregister(token(1))
	srv.Fail(token(2), fcmtest.InvalidArgument)
	srv.Fail(token(3), fcmtest.QuotaExceeded)
	srv.Fail(token(4), fcmtest.Internal)
	srv.Fail(token(5), fcmtest.Unavailable)
	ns := make([]sender.Notification, 6)
	for i := range ns {
		ns[i] = sender.Notification{Token: token(i), Title: "Fajr", Body: "in 10 minutes",
			Data: map[string]string{"reminder": "fajr"}, ExpiresAt: time.Now().Add(10 * time.Minute)}
	}
	out := ch.Deliver(context.Background(), ns)
	require.Equal(t, []sender.Outcome{
		{Status: sender.Sent},
		{Status: sender.Invalid, Reason: "UNREGISTERED"},
		{Status: sender.Invalid, Reason: "INVALID_ARGUMENT"},
		{Status: sender.Retry, Reason: "QUOTA_EXCEEDED", RetryAfter: time.Second},
		{Status: sender.Retry, Reason: "INTERNAL"},
		{Status: sender.Sent},
	}, out)
	msgs := srv.Messages(token(0))
	require.Len(t, msgs, 1)
	require.Equal(t, map[string]string{"title": "Fajr", "body": "in 10 minutes"}, msgs[0].Notification)
	require.Equal(t, map[string]string{"reminder": "fajr"}, msgs[0].Data)
	require.Equal(t, "high", msgs[0].Android["priority"])
	require.Regexp(t, `^5\d\ds$`, msgs[0].Android["ttl"])
	_, _, grants := srv.Counts()
	require.Equal(t, 1, grants, "one access token, reused")
}

// More than 500 notifications go out in several SendEach batches.
func TestDeliverSplitsBatches(t *testing.T) {
	srv, ch := setup(t, true)
	ns := make([]sender.Notification, fcm.MaxBatch+20)
	for i := range ns {
		ns[i] = sender.Notification{Token: token(i), Title: "t", Body: "b"}
	}
	out := ch.Deliver(context.Background(), ns)
	require.Len(t, out, len(ns))
	for _, o := range out {
		require.Equal(t, sender.Sent, o.Status)
	}
	accepted, _, _ := srv.Counts()
	require.Equal(t, len(ns), accepted)
}

// BenchmarkDeliver measures messages per second through the SDK's SendEach
// to the local server, 1,000 per operation.
func BenchmarkDeliver(b *testing.B) {
	_, ch := setup(b, true)
	ns := make([]sender.Notification, 1000)
	for i := range ns {
		ns[i] = sender.Notification{Token: token(i), Title: "Fajr", Body: "in 10 minutes"}
	}
	ctx := context.Background()
	b.ResetTimer()
	start, cpu := time.Now(), testenv.CPUTime()
	for range b.N {
		for i, o := range ch.Deliver(ctx, ns) {
			if o.Status != sender.Sent {
				b.Fatalf("message %d: %+v", i, o)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(ns))/time.Since(start).Seconds(), "deliveries/s")
	b.ReportMetric(float64(b.N*len(ns))/(testenv.CPUTime()-cpu).Seconds(), "deliveries/cpu-s")
}
