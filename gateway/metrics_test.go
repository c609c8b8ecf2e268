package gateway_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/gateway"
	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/presence"
	"github.com/chime-dev/chime/signing"
	"github.com/chime-dev/chime/status"
)

// metric reads the value of the series of name with labels (name=value
// pairs) from the registry every process serves at /metrics.
func metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	fams, err := prometheus.DefaultGatherer.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s %v", name, labels)
	return 0
}

// counters reads every gateway metric the test moves.
func counters(t *testing.T) map[string]float64 {
	return map[string]float64{
		"conns":    metric(t, "chime_gateway_connections"),
		"frames":   metric(t, "chime_gateway_frames_sent_total"),
		"messages": metric(t, "chime_gateway_messages_sent_total"),
		"replayed": metric(t, "chime_gateway_replayed_messages_total"),
		"acked":    metric(t, "chime_gateway_acks_received_total", "kind", "delivered"),
		"read":     metric(t, "chime_gateway_acks_received_total", "kind", "read"),
		"slow":     metric(t, "chime_gateway_slow_client_closes_total"),
		"token":    metric(t, "chime_gateway_handshakes_refused_total", "reason", "token"),
		"user":     metric(t, "chime_gateway_handshakes_refused_total", "reason", "user_connections"),
		"rate":     metric(t, "chime_gateway_handshakes_refused_total", "reason", "rate"),
	}
}

// moved returns how much each counter moved since before.
func moved(t *testing.T, before map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range counters(t) {
		out[k] = v - before[k]
	}
	return out
}

// publish puts a message for users on the gateway's stream, as a worker
// does.
func publish(t *testing.T, f *fixture, id string, body []byte, users ...string) {
	t.Helper()
	ctx := context.Background()
	msg, err := json.Marshal(map[string]any{"id": id, "body": string(body)})
	require.NoError(t, err)
	p := f.env.Redis.Pipeline()
	cmd, err := presence.PublishCmd(ctx, p, f.env.Prefix, f.gw.Instance(), presence.Envelope{App: f.app, Users: users, Message: msg})
	require.NoError(t, err)
	_, err = p.Exec(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, cmd.Val(), "published to an existing stream")
}

// Injected: two messages waiting in alice's inbox, a connection of alice
// (limit: one per user), a message published on the gateway's stream, an
// ack of one ID and a read receipt of two, a bad token, a second
// connection of alice, and then handshakes past the address's burst.
// Checked: the metrics every gateway serves move by exactly that: one open
// connection (back to none when it closes), 2 replayed messages, 1 message
// from the stream, at least 4 frames (2 replayed, the welcome, the
// message), 1 delivered and 2 read acks, and one refused handshake each for
// token, user_connections and rate.
func TestGatewayMetrics(t *testing.T) {
	f := start(t, withConfig(func(c *gateway.Config) { c.MaxConnsPerUser, c.HandshakeRate, c.HandshakeBurst = 1, 0.001, 3 }))
	ctx := context.Background()
	in := inbox.New(inbox.Config{Prefix: f.env.Prefix}, f.env.Redis)
	for _, id := range []string{"o1", "o2"} {
		_, err := in.Add(ctx, f.app, "alice", inbox.Message{ID: id}, time.Now())
		require.NoError(t, err)
	}
	before := counters(t)

	tok := f.token(t, f.key, "alice", time.Hour)
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := gateway.Dial(dctx, f.url, tok, nil)
	require.NoError(t, err)
	defer c.CloseNow()
	for fr := range c.Frames {
		if fr.Type == "welcome" {
			require.Equal(t, 2, fr.Replayed)
			break
		}
	}
	publish(t, f, "o3", []byte("hello"), "alice")
	fr := <-c.Frames
	require.Equal(t, "message", fr.Type)
	require.NoError(t, c.Ack(ctx, "o3"))
	require.NoError(t, c.Read(ctx, "o1", "o2"))
	f.refused(t, nil, "bad", http.StatusUnauthorized, "not valid")
	f.refused(t, nil, tok, http.StatusTooManyRequests, "already has 1 connections")
	testenv.WaitUntil(t, 5*time.Second, "the acks counted", func() bool {
		d := moved(t, before)
		return d["acked"] == 1 && d["read"] == 2
	})
	f.refused(t, nil, tok, http.StatusTooManyRequests, "too many handshakes")

	d := moved(t, before)
	require.Equal(t, 1.0, d["conns"], "open connections")
	require.Equal(t, 2.0, d["replayed"], "replayed messages")
	require.Equal(t, 1.0, d["messages"], "messages from the stream")
	require.GreaterOrEqual(t, d["frames"], 4.0, "frames")
	require.Equal(t, []float64{1, 1, 1}, []float64{d["token"], d["user"], d["rate"]}, "refused: token, user_connections, rate")
	require.Zero(t, d["slow"])

	require.NoError(t, c.Close())
	testenv.WaitUntil(t, 5*time.Second, "the connection counted closed", func() bool { return moved(t, before)["conns"] == 0 })
}

// Injected: a client that connects and then never reads, with a send
// queue of one frame, and 200 messages of 64 KB published to it (far more
// than the socket buffers hold). Checked: the gateway closes it as too
// slow, and counts one slow-client close.
func TestGatewayCountsSlowClientCloses(t *testing.T) {
	f := start(t, withConfig(func(c *gateway.Config) { c.SendQueue = 1 }))
	ctx := context.Background()
	before := counters(t)
	tok := f.token(t, f.key, "sloth", time.Hour)
	ws, _, err := websocket.Dial(ctx, f.url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
	require.NoError(t, err)
	defer ws.CloseNow()
	testenv.WaitUntil(t, 5*time.Second, "sloth connected", func() bool { return f.gw.Connections() == 1 })
	big := []byte(strings.Repeat("x", 64<<10))
	for i := range 200 {
		publish(t, f, "s"+strconv.Itoa(i), big, "sloth")
	}
	testenv.WaitUntil(t, 30*time.Second, "the slow client closed", func() bool { return f.gw.Connections() == 0 })
	require.Equal(t, 1.0, moved(t, before)["slow"])
}

// Injected: a gateway whose presence and stream are on a redis-server of
// the test's own, one connected client, and then that redis-server killed.
// Checked: the heartbeat's presence refreshes fail and are counted.
func TestGatewayCountsPresenceRefreshErrors(t *testing.T) {
	env := testenv.New(t)
	port := testenv.FreePort(t)
	stopRedis := testenv.RedisServer(t, port, t.TempDir(), "--save", "")
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), MaxRetries: -1})
	defer rdb.Close()
	testenv.WaitUntil(t, 30*time.Second, "the gateway's redis-server", func() bool { return rdb.Ping(context.Background()).Err() == nil })

	// The signing keys stay on the shared servers, as in start.
	keys := signing.New(signing.Config{Prefix: env.Prefix, CacheTTL: time.Hour}, env.DB, env.Redis, ring(t), env.Log)
	reg := presence.New(presence.Config{Prefix: env.Prefix, TTL: 2 * time.Second}, rdb)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gw, err := gateway.New(gateway.Config{Instance: "g-" + testenv.ID(), Prefix: env.Prefix,
		HeartbeatInterval: 200 * time.Millisecond, PingTimeout: 200 * time.Millisecond},
		rdb, reg, inbox.New(inbox.Config{Prefix: env.Prefix}, rdb), status.New(status.Config{Prefix: env.Prefix}, rdb, nil),
		keys, clock.Real{}, env.Log, ln)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	defer func() { cancel(); <-done }() //nolint:errcheck // only waits for the reader to stop
	f := &fixture{env: env, gw: gw, url: "ws://" + ln.Addr().String() + "/ws", keys: keys, clock: clock.Real{}}
	f.app, f.key = f.newApp(t, "a")
	testenv.WaitUntil(t, 5*time.Second, "the gateway up", func() bool {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	dial(t, f, "alice", time.Hour)

	before := metric(t, "chime_gateway_presence_refresh_errors_total")
	stopRedis()
	testenv.WaitUntil(t, 10*time.Second, "a failed presence refresh counted", func() bool {
		return metric(t, "chime_gateway_presence_refresh_errors_total") > before
	})
}
