package deliveryevent_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/chime-dev/chime/deliveryevent"
	"github.com/chime-dev/chime/deliveryevent/deliveryeventtest"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/netguard"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/store"
)

// BenchmarkDispatch measures the events endpoint throughput: b.N events,
// recorded in chunks of 100 users (one stream entry each) for one app, are
// posted by one dispatcher with its default batching to a loopback
// receiver that verifies every signature. It reports events/s delivered
// (from the first entry read to the last event received) and POSTs.
func BenchmarkDispatch(b *testing.B) {
	env := testenv.New(b)
	spec, _ := seal.NewKey("b1")
	k, _ := seal.Parse(spec)
	r := deliveryeventtest.New()
	defer r.Close()
	ctx := context.Background()
	a, _, _, err := store.CreateApp(ctx, env.DB, "bench", "")
	if err != nil {
		b.Fatal(err)
	}
	sealed, _ := k.Seal([]byte(r.Secret()), store.DeliveryEventSecretAAD(a.ID))
	if _, err := store.PutDeliveryEventEndpoint(ctx, env.DB, store.DeliveryEventEndpoint{AppID: a.ID, URL: r.URL(), Secret: sealed}); err != nil {
		b.Fatal(err)
	}
	rec := deliveryevent.NewRecorder(deliveryevent.RecorderConfig{Prefix: env.Prefix, MaxLen: int64(b.N/100 + 10)}, env.Redis, env.DB, env.Log)
	const size = 100
	for i := 0; i < b.N; i += size {
		n := min(size, b.N-i)
		if err := rec.Record(ctx, chunk(a.ID, 1, i/size, i, n)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	d := deliveryevent.NewDispatcher(deliveryevent.Config{Prefix: env.Prefix, Consumer: "bench", Poll: 5 * time.Millisecond,
		Guard: netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}), Keyring: k}, env.Redis, env.DB, env.Log)
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(dctx) }()
	testenv.WaitUntil(b, 10*time.Minute, "every event received", func() bool { return r.Stats().Distinct >= b.N })
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	st := r.Stats()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(st.Posts), "posts")
}
