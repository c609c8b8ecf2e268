package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/chime-dev/chime/internal/testenv"
)

// get returns the body of url.
func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return b
}

// alertMetrics returns the Chime and asynq metric names the alerts of
// deployments/k8s/monitoring use (histograms by their family name).
func alertMetrics(t *testing.T) []string {
	t.Helper()
	y, err := os.ReadFile("../deployments/k8s/monitoring/prometheusrule.yaml")
	require.NoError(t, err)
	var pr struct {
		Spec struct {
			Groups []struct {
				Rules []struct{ Expr string }
			}
		}
	}
	require.NoError(t, yaml.Unmarshal(y, &pr))
	name := regexp.MustCompile(`\b(?:chime|asynq)_[a-z_]+\b`)
	seen := map[string]bool{}
	var out []string
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			for _, n := range name.FindAllString(r.Expr, -1) {
				n = strings.TrimSuffix(n, "_bucket")
				if !seen[n] {
					seen[n] = true
					out = append(out, n)
				}
			}
		}
	}
	require.NotEmpty(t, out)
	return out
}

// Injected: a coordinator, a worker and a gateway process on the test's
// servers, a task scheduled an hour ahead on the test's queue (so that
// asynq's collector has a queue to report), and a fire of 50 users. Checked: `promtool check
// metrics` accepts the /metrics of each (before the renames it refused the
// coordinator's asynq_queue_paused_total and asynq_tasks_enqueued_total,
// gauges named like counters); the coordinator exports asynq_queue_tasks
// and asynq_queue_paused for the queue instead; and every Chime or asynq
// metric that an alert of deployments/k8s/monitoring uses is served.
func TestMetricsPassPromtool(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (apt-get install prometheus, or run make test): metrics not checked")
	}
	b := setup(t)
	b.cfg.AckTimeout = 5 * time.Second
	ac := asynq.NewClientFromRedisClient(b.env.Redis)
	_, err = ac.Enqueue(asynq.NewTask("chime:promtool", nil), asynq.Queue(b.env.Queue), asynq.ProcessIn(time.Hour))
	require.NoError(t, err)

	_, coordinator := b.startCoordinatorProcess(build(t, "coordinator"), "c1")
	worker, gateway := loopbackAddr(t), loopbackAddr(t)
	b.spawn(build(t, "worker"), "w1", "CHIME_METRICS_ADDR="+worker)
	b.spawn(build(t, "gateway"), "g1", "CHIME_METRICS_ADDR="+gateway, "CHIME_GATEWAY_ADDR="+loopbackAddr(t),
		"CHIME_SECRET_KEYS="+secretKeys)
	worker, gateway = "http://"+worker, "http://"+gateway
	for _, u := range []string{worker, gateway} {
		ready(t, 30*time.Second, u, u+"/readyz")
	}
	// A real fire, so that the delivery counters have their series.
	b.apiURL = coordinator
	places := []place{{"dubai", "Asia/Dubai"}}
	b.putReminder("checked", 2, time.Now().Add(2*time.Hour), places)
	b.register("checked", 16_000_000, 50, places)
	fireAt := nextSecond(2 * time.Second)
	b.putReminder("checked", 2, fireAt, places)
	require.Len(t, at(b.waitDone("checked", 1, time.Minute), fireAt), 1)
	testenv.WaitUntil(t, 10*time.Second, "asynq's metrics of the queue", func() bool {
		_, ok := sample(scrape(t, coordinator+"/metrics"), "asynq_queue_size", map[string]string{"queue": b.env.Queue})
		return ok
	})

	served := map[string]bool{}
	for name, url := range map[string]string{"coordinator": coordinator, "worker": worker, "gateway": gateway} {
		body := get(t, url+"/metrics")
		cmd := exec.Command(bin, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool check metrics on the %s's /metrics:\n%s", name, out)
		for f := range scrape(t, url+"/metrics") {
			served[f] = true
		}
	}

	c := scrape(t, coordinator+"/metrics")
	for _, gone := range []string{"asynq_tasks_enqueued_total", "asynq_queue_paused_total"} {
		require.NotContains(t, c, gone)
	}
	pending, ok := sample(c, "asynq_queue_tasks", map[string]string{"queue": b.env.Queue, "state": "scheduled"})
	require.True(t, ok, "asynq_queue_tasks of the queue")
	require.EqualValues(t, 1, pending, "the scheduled task")
	paused, ok := sample(c, "asynq_queue_paused", map[string]string{"queue": b.env.Queue})
	require.True(t, ok, "asynq_queue_paused of the queue")
	require.Zero(t, paused)
	require.Equal(t, "GAUGE", c["asynq_queue_tasks"].GetType().String())

	for _, n := range alertMetrics(t) {
		require.True(t, served[n], "the alerts use %s, which no process serves", n)
	}
}
