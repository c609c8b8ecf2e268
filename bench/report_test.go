package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	require.Equal(t, 50*time.Millisecond, percentile(ds, 50))
	require.Equal(t, 99*time.Millisecond, percentile(ds, 99))
	require.Equal(t, 100*time.Millisecond, percentile(ds, 100))
	require.Equal(t, 100*time.Millisecond, ds[0], "percentile must not reorder its input")
	require.Zero(t, percentile(nil, 99))
}

func TestHeadlineComparesAgainstTheBetterPeer(t *testing.T) {
	rep := Report{Results: []Result{
		{System: "chime", Sink: "no-op", Users: 1000, DeliveriesPerSec: 900_000, RedisBytesPerUser: 4.5, LatenessP99Ms: 120},
		{System: "asynq task per user (defaults)", Sink: "no-op", Users: 1000, DeliveriesPerSec: 6000, RedisBytesPerUser: 590},
		{System: "asynq task per user (tuned)", Sink: "no-op", Users: 1000, DeliveriesPerSec: 9000, RedisBytesPerUser: 591},
		{System: "chime", Sink: "webhook", Users: 1000, DeliveriesPerSec: 400_000},
		{System: "chime", Sink: "no-op", Users: 10, DeliveriesPerSec: 1},
	}}
	h := rep.Headline()
	require.Equal(t, 1000, h.Users)
	require.Equal(t, 900_000.0, h.EnginePerS)
	require.Equal(t, 9000.0, h.PeerPerS)
	require.InDelta(t, 100.0, h.Ratio, 1e-9)
	require.Equal(t, 591.0, h.PeerRedisBytesPerUser)
	require.Equal(t, 400_000.0, h.WebhookPerS)
	require.Contains(t, rep.JSON(), `"ratio":100`)
}

func TestCounterLateness(t *testing.T) {
	c := NewCounter()
	at := time.Now()
	c.record(1, 10)
	c.record(1, 10)
	c.record(2, 5)
	require.EqualValues(t, 25, c.Delivered())
	require.Len(t, c.Lateness(at), 2, "one lateness per group")
}
