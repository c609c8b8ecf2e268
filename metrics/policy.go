package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var (
	policyChunks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chime_policy_chunks_total", Help: "Chunks the delivery policy decided.",
	})
	policyRoundTrips = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chime_policy_round_trips_total", Help: "Redis round trips the delivery policy made deciding chunks (one a chunk, more after a lost shard's rebuild).",
	})
	policySkipped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chime_policy_skipped_chunks_total", Help: "Chunks the delivery policy decided without its decision script, their app having no preferences (counted in chime_policy_chunks_total too).",
	})
	policyOutcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chime_policy_users_total", Help: "Users the delivery policy did not send, by outcome, or held for quiet hours.",
	}, []string{"outcome"})
)

func init() {
	prometheus.MustRegister(policyChunks, policyRoundTrips, policySkipped, policyOutcomes)
}

// PolicyChunk counts a chunk decided in trips Redis round trips, and its
// users not sent by outcome type (or "held").
func PolicyChunk(trips int, users map[string]int) {
	policyChunks.Inc()
	policyRoundTrips.Add(float64(trips))
	for o, n := range users {
		if n > 0 {
			policyOutcomes.WithLabelValues(o).Add(float64(n))
		}
	}
}

// PolicySkipped counts a chunk decided without the decision script (its
// app has no preferences and its reminder no cap); PolicyChunk counts it
// too, with the round trips that found so.
func PolicySkipped() { policySkipped.Inc() }

// PolicySkippedChunks returns the chunks PolicySkipped counted in this
// process.
func PolicySkippedChunks() float64 { return counterValue(policySkipped) }

// PolicyCounts returns the chunks decided and the round trips that took,
// for this process (benchmarks read them before and after a run).
func PolicyCounts() (chunks, trips float64) {
	return counterValue(policyChunks), counterValue(policyRoundTrips)
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
