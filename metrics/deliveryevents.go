package metrics

import "github.com/prometheus/client_golang/prometheus"

// Outcomes of delivery events (package deliveryevent).
const (
	EventsRecorded     = "recorded"      // written to the app's stream
	EventsRecordFailed = "record_failed" // not written: Redis failed or was too slow
	EventsTrimmed      = "trimmed"       // dropped unsent: the app's stream was full
	EventsPosted       = "posted"        // acknowledged by the app's endpoint
	EventsGivenUp      = "given_up"      // dropped unsent: older than the maximum age
)

var (
	deliveryEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chime_delivery_events_total",
		Help: "Delivery events by outcome: recorded, record_failed, trimmed (stream full), posted (2xx), given_up (too old).",
	}, []string{"outcome"})

	deliveryEventPosts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chime_delivery_event_posts_total",
		Help: "POSTs of delivery events to apps' endpoints, by result: ok (2xx) or error (retried).",
	}, []string{"result"})
)

func init() { prometheus.MustRegister(deliveryEvents, deliveryEventPosts) }

// DeliveryEvents counts n delivery events reaching an outcome.
func DeliveryEvents(outcome string, n int) {
	if n > 0 {
		deliveryEvents.WithLabelValues(outcome).Add(float64(n))
	}
}

// DeliveryEventPost counts one POST to an app's endpoint.
func DeliveryEventPost(ok bool) {
	if ok {
		deliveryEventPosts.WithLabelValues("ok").Inc()
	} else {
		deliveryEventPosts.WithLabelValues("error").Inc()
	}
}
