package metrics

import (
	"sync/atomic"

	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// asynq's collector names two gauges like counters, which breaks
// Prometheus's conventions (promtool check metrics refuses them) and makes
// rate() over them look meaningful. They are exported under these names
// instead; the others keep asynq's.
var queueRenames = map[string]struct{ name, help string }{
	"asynq_tasks_enqueued_total": {"asynq_queue_tasks", "Tasks in a queue now, by queue and state (active, pending, scheduled, retry, archived, completed)."},
	"asynq_queue_paused_total":   {"asynq_queue_paused", "1 while the queue is paused, else 0."},
}

// queues exports asynq's queue metrics through the inspector most recently
// given to RegisterQueues, renamed by queueRenames. It describes nothing
// (an unchecked collector), so the inspector can change after
// registration.
type queues struct {
	cur atomic.Pointer[prometheus.Registry]
}

func (q *queues) Describe(chan<- *prometheus.Desc) {}

// Collect gathers asynq's collector through a registry of its own, which
// yields each family's name, and passes its samples on, under the new name
// where queueRenames has one. asynq exports only gauges and counters.
func (q *queues) Collect(ch chan<- prometheus.Metric) {
	reg := q.cur.Load()
	if reg == nil {
		return
	}
	fams, _ := reg.Gather() // asynq's collector logs its own errors and sends what it has
	for _, f := range fams {
		name, help := f.GetName(), f.GetHelp()
		if r, ok := queueRenames[name]; ok {
			name, help = r.name, r.help
		}
		for _, m := range f.GetMetric() {
			var labels, values []string
			for _, l := range m.GetLabel() {
				labels, values = append(labels, l.GetName()), append(values, l.GetValue())
			}
			desc := prometheus.NewDesc(name, help, labels, nil)
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, m.GetCounter().GetValue(), values...)
			case dto.MetricType_GAUGE:
				ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, m.GetGauge().GetValue(), values...)
			}
		}
	}
}

var queueMetrics = &queues{}

func init() { prometheus.MustRegister(queueMetrics) }

// RegisterQueues exports asynq's queue metrics (sizes by state, latency,
// memory, processed and failed counts of every queue in Redis) read through
// in, in place of any inspector given before.
func RegisterQueues(in *asynq.Inspector) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(unchecked{asynqmetrics.NewQueueMetricsCollector(in)})
	queueMetrics.cur.Store(reg)
}

// unchecked hides a collector's descriptions from its registry: asynq's
// collector describes itself by collecting, a round trip to Redis at
// registration.
type unchecked struct{ prometheus.Collector }

func (unchecked) Describe(chan<- *prometheus.Desc) {}
