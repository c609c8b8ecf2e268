// Package metrics defines Chime's Prometheus metrics and the one-line calls
// that move them. Every binary serves them at /metrics (package health)
// from the default registry, next to the Go runtime and process metrics.
//
// Names follow Prometheus conventions: counters end in _total, durations
// are histograms in seconds, and every name starts with chime_. Labels have
// small fixed sets of values (channel, outcome, reason), never IDs, so the
// number of series does not grow with reminders, occurrences or users.
//
// The gateway's metrics (chime_gateway_*) are in gateway.go. The
// coordinator also exports asynq's queue metrics (asynq_queue_size,
// asynq_queue_latency_seconds, asynq_queue_tasks and others) with asynq's
// x/metrics collector, two of them renamed: see RegisterQueues.
//
// What /metrics serves passes `promtool check metrics`; a test of the root
// package runs promtool against a coordinator's, a worker's and a
// gateway's.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Outcomes of a delivery.
const (
	Sent    = "sent"    // handed to the channel
	Failed  = "failed"  // refused by the channel for good
	Expired = "expired" // not sent: the reminder's validity window passed
)

var (
	deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chime_deliveries_total",
		Help: "Users handled by workers, by channel and outcome (sent, failed, expired).",
	}, []string{"channel", "outcome"})

	fireLateness = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "chime_fire_lateness_seconds",
		Help:    "How long after its instant an occurrence's groups were on the queue; for a spread send, how long after its planned slot each slot's groups were.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	})

	groupDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "chime_group_duration_seconds",
		Help:    "Time from a worker's start ack to its finish ack for one group.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	})

	requeues = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chime_requeues_total",
		Help: "Groups put back on the queue by the leader's reaper: ack_timeout (started, no finish ack) or queue_timeout (queued, no start ack).",
	}, []string{"reason"})

	releases = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chime_group_releases_total",
		Help: "Groups a worker gave back for a retry: stopping (shutdown) or error (channel or store failure).",
	}, []string{"reason"})

	fired = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chime_occurrences_fired_total",
		Help: "Occurrences whose groups were enqueued.",
	})

	prayerSkipped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chime_prayer_skipped_total",
		Help: "Prayer reminder locations a planning pass or upcoming list could not compute times for, by reason (no_coordinates: the location's coordinates were removed).",
	}, []string{"reason"})
	missed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chime_occurrences_missed_total",
		Help: "Occurrences recorded as missed: their grace window passed before they could fire (an outage), so nobody was reminded.",
	})

	expiredGroups = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chime_groups_expired_total",
		Help: "Groups finished as expired because the validity window passed during delivery.",
	})

	leader = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "chime_leader",
		Help: "1 while this coordinator replica is the scheduling leader, else 0.",
	})
)

func init() {
	prometheus.MustRegister(deliveries, fireLateness, groupDuration, requeues, releases, fired, missed, expiredGroups, leader, prayerSkipped)
	// Series that exist from the start read 0 instead of missing, which
	// keeps rate() and alerts simple.
	for _, r := range []string{"ack_timeout", "queue_timeout"} {
		requeues.WithLabelValues(r)
	}
	for _, r := range []string{"stopping", "error"} {
		releases.WithLabelValues(r)
	}
}

// Handler serves the default registry in Prometheus's text format.
func Handler() http.Handler { return promhttp.Handler() }

// Delivered counts a chunk's users on channel: sent, refused for good, and
// not sent because the validity window would have passed first.
func Delivered(channel string, sent, failed, expired int) {
	deliveries.WithLabelValues(channel, Sent).Add(float64(sent))
	deliveries.WithLabelValues(channel, Failed).Add(float64(failed))
	if expired > 0 {
		deliveries.WithLabelValues(channel, Expired).Add(float64(expired))
	}
}

// GroupExpired counts a group finished as expired with users unsent.
func GroupExpired(channel string, users int) {
	expiredGroups.Inc()
	deliveries.WithLabelValues(channel, Expired).Add(float64(users))
}

// GroupDone observes the time a worker spent on a group.
func GroupDone(d time.Duration) { groupDuration.Observe(d.Seconds()) }

// Released counts a group a worker gave back, for reason "stopping" or
// "error".
func Released(reason string) { releases.WithLabelValues(reason).Inc() }

// Requeued counts a group the reaper put back, for reason "ack_timeout" or
// "queue_timeout".
func Requeued(reason string) { requeues.WithLabelValues(reason).Inc() }

// Fired counts an occurrence enqueued late after its instant.
func Fired(late time.Duration) {
	fired.Inc()
	fireLateness.Observe(max(late, 0).Seconds())
}

// FiredSpread counts a spread send's occurrence fired: its groups go on the
// queue at their slots, each observed by SlotQueued.
func FiredSpread() { fired.Inc() }

// SlotQueued observes how long after its planned slot a spread send's slot
// was on the queue.
func SlotQueued(late time.Duration) { fireLateness.Observe(max(late, 0).Seconds()) }

// PrayerSkipped counts a prayer reminder's location the planner could not
// compute times for, by reason: no_coordinates (removed after the reminder
// named the location), convention, prayers, zone, compute.
func PrayerSkipped(reason string) { prayerSkipped.WithLabelValues(reason).Inc() }

// Missed counts n occurrences recorded as missed.
func Missed(n int) { missed.Add(float64(n)) }

// Leading sets the leader gauge.
func Leading(on bool) {
	if on {
		leader.Set(1)
	} else {
		leader.Set(0)
	}
}
