package e2e

import (
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
)

// scrape reads the metrics served at url.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// sample returns the value of the series of name whose labels include
// labels (a counter or gauge's value, a histogram's count), and whether
// there is one.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// A real fire through a coordinator process and a worker process moves the
// metrics each serves: the worker counts every delivery by channel and
// outcome and one group duration per group; the coordinator counts the fire
// and its lateness, reports itself leader, and exports asynq's queue
// metrics for the queue. Both answer /livez and /readyz (Redis and MariaDB
// up) with 200.
func TestProbesAndMetricsOfProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	b := setup(t)
	b.cfg.AckTimeout = 5 * time.Second
	coordinator, worker := build(t, "coordinator"), build(t, "worker")
	_, url := b.startCoordinatorProcess(coordinator, "c1")
	b.apiURL = url
	workerAddr := loopbackAddr(t)
	b.spawn(worker, "w1", "CHIME_METRICS_ADDR="+workerAddr)
	workerURL := "http://" + workerAddr
	testenv.WaitUntil(t, 30*time.Second, "the worker's probes", func() bool {
		resp, err := http.Get(workerURL + "/livez")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	for _, u := range []string{url + "/livez", url + "/readyz", url + "/healthz", workerURL + "/readyz"} {
		resp, err := http.Get(u)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, u)
	}
	testenv.WaitUntil(t, 10*time.Second, "c1 to lead", func() bool { return b.leader() == "c1" })

	const users = 1000
	places := []place{{"dubai", "Asia/Dubai"}}
	b.putReminder("metered", 8, time.Now().Add(2*time.Hour), places)
	b.register("metered", 15_000_000, users, places)
	fireAt := nextSecond(2 * time.Second)
	b.putReminder("metered", 8, fireAt, places)
	occ := at(b.waitDone("metered", 1, time.Minute), fireAt)
	require.Len(t, occ, 1)

	w := scrape(t, workerURL+"/metrics")
	sent, _ := sample(w, "chime_deliveries_total", map[string]string{"channel": "webhook", "outcome": "sent"})
	require.EqualValues(t, users, sent, "deliveries counted by the worker")
	groups, _ := sample(w, "chime_group_duration_seconds", nil)
	require.EqualValues(t, occ[0].GroupsTotal, groups, "one group duration per group")

	c := scrape(t, url+"/metrics")
	fired, _ := sample(c, "chime_occurrences_fired_total", nil)
	require.GreaterOrEqual(t, fired, 1.0)
	late, _ := sample(c, "chime_fire_lateness_seconds", nil)
	require.GreaterOrEqual(t, late, 1.0)
	leading, _ := sample(c, "chime_leader", nil)
	require.EqualValues(t, 1, leading)
	_, ok := sample(c, "asynq_queue_size", map[string]string{"queue": b.env.Queue})
	require.True(t, ok, "asynq's queue metrics for the queue")
	// A task carries one group or, for small groups of one instant,
	// several: between one task and one per group.
	processed, _ := sample(c, "asynq_tasks_processed_total", map[string]string{"queue": b.env.Queue})
	require.GreaterOrEqual(t, processed, 1.0)
	require.LessOrEqual(t, processed, float64(occ[0].GroupsTotal))
}
