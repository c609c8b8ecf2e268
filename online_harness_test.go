package chime_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/gateway"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/store"
)

// secretKeys seal the apps' signing keys of every online test: the
// coordinators make them, the gateways open them.
var secretKeys = func() string {
	k, err := seal.NewKey("test")
	if err != nil {
		panic(err)
	}
	return k
}()

// setupOnline returns a bundle whose workers deliver online first (webhook
// as the fallback), with short heartbeats so that presence bounds are short.
func setupOnline(t *testing.T) *bundle {
	b := setup(t)
	b.cfg.SecretKeys = secretKeys
	b.cfg.Online = chime.OnlineConfig{
		Enabled: true, Heartbeat: 300 * time.Millisecond, PingTimeout: 300 * time.Millisecond,
		PresenceTTL: 1500 * time.Millisecond, InboxCap: 100, InboxTTL: time.Hour, UnreadTTL: time.Hour, StatusRetention: time.Hour, StatusPerUser: 200,
	}
	return b
}

// startGateway runs a gateway in this process and returns its /ws URL.
func (b *bundle) startGateway(id string) string {
	b.t.Helper()
	cfg := b.cfg
	cfg.ReplicaID = id
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b.t, err)
	g, err := chime.NewGateway(cfg, b.env.DB, b.env.Redis, clock.Real{}, b.env.Log, ln)
	require.NoError(b.t, err)
	b.group.Go(func() error { return g.Run(b.ctx) })
	url := "ws://" + ln.Addr().String() + "/ws"
	testenv.WaitUntil(b.t, 5*time.Second, "gateway up", func() bool {
		resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return url
}

// appID returns the ID of the bundle's app.
func (b *bundle) appID() int64 {
	var app store.App
	require.NoError(b.t, b.env.DB.First(&app).Error)
	return app.ID
}

// connect opens a client for user with a token from the API.
func (b *bundle) connect(url, user string) *gateway.Client {
	b.t.Helper()
	var out struct{ Token string }
	require.Equal(b.t, http.StatusCreated, b.call(http.MethodPost, "/v1/users/"+user+"/token", nil, &out))
	tok := out.Token
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := gateway.Dial(ctx, url, tok, nil)
	require.NoError(b.t, err)
	b.t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// frames reads from c until a welcome frame and returns the messages before it.
func welcome(t *testing.T, c *gateway.Client) (replayed []gateway.Frame) {
	t.Helper()
	for {
		select {
		case f, ok := <-c.Frames:
			require.True(t, ok, "connection closed before the welcome: %v", c.Err())
			if f.Type == "welcome" {
				return replayed
			}
			replayed = append(replayed, f)
		case <-time.After(10 * time.Second):
			t.Fatal("no welcome frame")
		}
	}
}

// nextMessage waits for the next message frame on c.
func nextMessage(t *testing.T, c *gateway.Client, timeout time.Duration) gateway.Frame {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case f, ok := <-c.Frames:
			require.True(t, ok, "connection closed: %v", c.Err())
			if f.Type == "message" {
				return f
			}
		case <-deadline:
			t.Fatalf("no message within %v", timeout)
		}
	}
}

// fire defines reminder key for users at one place, with extra fields,
// fires it in about two seconds and returns the fire instant.
func (b *bundle) fireFor(key string, users []string, extra map[string]any) time.Time {
	b.t.Helper()
	p := place{"cairo", "Africa/Cairo"}
	def := func(at time.Time) {
		loc, err := time.LoadLocation(p.zone)
		require.NoError(b.t, err)
		body := map[string]any{"title": "Test " + key, "body": "body", "groups": 4, "valid_for": "5m",
			"times": []map[string]string{{"location": p.name, "zone": p.zone, "local_time": at.In(loc).Format("15:04:05")}}}
		for k, v := range extra {
			body[k] = v
		}
		require.Contains(b.t, []int{200, 201}, b.call(http.MethodPut, "/v1/reminders/"+key, body, nil))
	}
	def(time.Now().Add(2 * time.Hour))
	subs := make([]map[string]string, len(users))
	for i, u := range users {
		subs[i] = map[string]string{"user_id": u, "location": p.name}
	}
	require.Equal(b.t, http.StatusOK, b.call(http.MethodPost, "/v1/reminders/"+key+"/subscribers", map[string]any{"subscribers": subs}, nil))
	at := nextSecond(2 * time.Second)
	def(at)
	return at
}

func userIDs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// otherApp creates a second app and returns its key.
func (b *bundle) otherApp() string {
	b.t.Helper()
	_, key, err := api.CreateApp(context.Background(), b.env.DB, "other")
	require.NoError(b.t, err)
	return key
}

// callAs is call with another key.
func (b *bundle) callAs(key, method, path string, in, out any) int {
	b.t.Helper()
	own := b.key
	b.key = key
	defer func() { b.key = own }()
	return b.call(method, path, in, out)
}
