package bench

import (
	"slices"
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

func TestZipfSizes(t *testing.T) {
	for _, tc := range []struct{ users, n, biggestMin, biggestMax, medianMin, medianMax int }{
		{1_000_000, 5_000, 90_000, 110_000, 100, 300},
		{100_000, 500, 9_000, 11_000, 100, 300},
		{10, 4, 1, 10, 1, 10},
	} {
		s := ZipfSizes(tc.users, tc.n)
		require.Len(t, s, tc.n)
		sum := 0
		for _, v := range s {
			require.GreaterOrEqual(t, v, 1)
			sum += v
		}
		require.Equal(t, tc.users, sum)
		sorted := slices.Sorted(slices.Values(s))
		require.GreaterOrEqual(t, sorted[tc.n-1], tc.biggestMin)
		require.LessOrEqual(t, sorted[tc.n-1], tc.biggestMax)
		require.GreaterOrEqual(t, sorted[tc.n/2], tc.medianMin)
		require.LessOrEqual(t, sorted[tc.n/2], tc.medianMax)
	}
	loc := bySizes([]int{2, 1, 3})
	var got []int
	for i := range 6 {
		got = append(got, loc(i))
	}
	require.Equal(t, []int{0, 0, 1, 2, 2, 2}, got)
}

// The named runs fill their own keys and never the main run's; runs not
// made leave their keys out.
func TestHeadlineNamedRuns(t *testing.T) {
	cpu, uuidIndex, tenIndex := 0.8, 18.2, 5.1
	rep := Report{Results: []Result{
		{System: "chime", Sink: "no-op", Users: 1000, DeliveriesPerSec: 900_000},
		{System: "asynq task per user (tuned)", Sink: "no-op", Users: 1000, DeliveriesPerSec: 3000},
		{Run: "defaults", System: "chime", Sink: "no-op", Users: 1000, DeliveriesPerSec: 600_000, LatenessP99Ms: 90, CPUSecondsPerMilln: &cpu, Complete: true},
		{Run: "uuid", System: "chime (UUID IDs)", Sink: "no-op", Users: 1000, IndexBytesPerUser: &uuidIndex, RedisBytesPerUser: 40, Complete: true},
		{Run: "many_locations", System: "chime", Sink: "no-op", Users: 1000, Tasks: 40, FireToLastMs: 700, Complete: true},
		{Run: "ten_million", System: "chime", Sink: "no-op", Users: 1000, Delivered: 10, FireToLastMs: 30000, RegisterPerSecond: 2000, IndexBytesPerUser: &tenIndex, CPUSecondsPerMilln: &cpu}, // cut short
	}}
	h := rep.Headline()
	require.Equal(t, 900_000.0, h.EnginePerS)
	require.Equal(t, 18.2, h.RedisBytesPerUUIDSubscriber)
	require.InDelta(t, 200.0, *h.DefaultsRatio, 1e-9)
	require.Equal(t, 90.0, *h.DefaultsP99LatenessMs)
	require.EqualValues(t, 40, *h.ManyLocationsTasks)
	js := rep.JSON()
	require.Contains(t, js, `"many_locations_tasks":40`)
	require.Contains(t, js, `"defaults_cpu_s_per_million":0.8`)
	require.NotContains(t, js, "ten_million_fire_to_last_ms", "a run cut short has no delivery figures")
	require.NotContains(t, js, "ten_million_cpu_s_per_million", "a run cut short has no delivery figures")
	require.Contains(t, js, `"ten_million_register_per_s":2000`, "its registration finished")
	require.Contains(t, js, `"ten_million_redis_bytes_per_subscriber":5.1`)
	require.NotContains(t, js, "ten_million_mysql_bytes", "not measured")
	require.Contains(t, js, `"incomplete":["ten_million"]`)
	require.Contains(t, rep.Results[4].row(), "n/a")
	require.NotContains(t, js, `"cpu_s_per_million":0`, "the main run's CPU was not measured")
}

// With only a named run made, the main run's keys are left out, not zeros.
func TestHeadlineLeavesOutRunsNotMade(t *testing.T) {
	index := 18.5
	rep := Report{Results: []Result{{Run: "uuid", System: "chime (UUID IDs)", Sink: "no-op", Users: 10, IndexBytesPerUser: &index, Complete: true}}}
	require.JSONEq(t, `{"redis_bytes_per_uuid_subscriber":18.5}`, rep.JSON())
}
