package metrics

import "github.com/prometheus/client_golang/prometheus"

// Why the gateway refused a WebSocket handshake (or, for Presence, closed
// the connection right after it, with 1013).
const (
	RefusedRate        = "rate"             // the address's handshake rate (429)
	RefusedToken       = "token"            // a missing, bad or expired token (401)
	RefusedKeys        = "keys_unavailable" // the signing key could not be read (503)
	RefusedUserLimit   = "user_connections" // the user's connections to this gateway (429)
	RefusedPresence    = "presence"         // presence or the inbox unavailable (1013)
	RefusedUpgradeFail = "upgrade"          // not a valid WebSocket upgrade
)

// Kinds of client acknowledgement.
const (
	AckDelivered = "delivered" // {"type":"ack"}: the message arrived
	AckRead      = "read"      // {"type":"read"}: the user read it
)

var (
	gatewayConns = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "chime_gateway_connections",
		Help: "WebSocket connections open on this gateway.",
	})

	gatewayFrames = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chime_gateway_frames_sent_total",
		Help: "Frames written to clients: messages, welcomes, pongs and errors.",
	})

	gatewayMessages = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chime_gateway_messages_sent_total",
		Help: "Messages from workers (the gateway's stream) handed to open connections, one per connection.",
	})

	gatewayReplayed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chime_gateway_replayed_messages_total",
		Help: "Waiting inbox messages written to clients as they connected.",
	})

	gatewayAcks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chime_gateway_acks_received_total",
		Help: "Message IDs clients acknowledged, by kind (delivered, read).",
	}, []string{"kind"})

	gatewaySlowCloses = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chime_gateway_slow_client_closes_total",
		Help: "Connections closed because the client did not take its send queue (1013; its messages stay in its inbox).",
	})

	gatewayPresenceErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "chime_gateway_presence_refresh_errors_total",
		Help: "Heartbeat presence refreshes (of up to 1,000 connections each) that failed: those users may look offline until the next one.",
	})

	gatewayRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chime_gateway_handshakes_refused_total",
		Help: "WebSocket handshakes refused, by reason (rate, token, keys_unavailable, user_connections, presence, upgrade).",
	}, []string{"reason"})
)

func init() {
	prometheus.MustRegister(gatewayConns, gatewayFrames, gatewayMessages, gatewayReplayed, gatewayAcks,
		gatewaySlowCloses, gatewayPresenceErrors, gatewayRefused)
	for _, k := range []string{AckDelivered, AckRead} {
		gatewayAcks.WithLabelValues(k)
	}
	for _, r := range []string{RefusedRate, RefusedToken, RefusedKeys, RefusedUserLimit, RefusedPresence, RefusedUpgradeFail} {
		gatewayRefused.WithLabelValues(r)
	}
}

// GatewayConnected counts a connection open and returns what counts it
// closed: defer metrics.GatewayConnected()().
func GatewayConnected() (closed func()) {
	gatewayConns.Inc()
	return gatewayConns.Dec
}

// GatewayFrameSent counts a frame written to a client.
func GatewayFrameSent() { gatewayFrames.Inc() }

// GatewayMessageSent counts a message from the stream handed to a
// connection.
func GatewayMessageSent() { gatewayMessages.Inc() }

// GatewayReplayed counts n waiting messages written to a connecting client.
func GatewayReplayed(n int) { gatewayReplayed.Add(float64(n)) }

// GatewayAcked counts n message IDs a client acknowledged; read tells a
// read receipt from a delivery ack.
func GatewayAcked(read bool, n int) {
	kind := AckDelivered
	if read {
		kind = AckRead
	}
	gatewayAcks.WithLabelValues(kind).Add(float64(n))
}

// GatewaySlowClose counts a connection closed for a full send queue.
func GatewaySlowClose() { gatewaySlowCloses.Inc() }

// GatewayPresenceError counts a failed presence refresh.
func GatewayPresenceError() { gatewayPresenceErrors.Inc() }

// GatewayRefused counts a handshake refused for reason (one of the
// Refused constants).
func GatewayRefused(reason string) { gatewayRefused.WithLabelValues(reason).Inc() }
