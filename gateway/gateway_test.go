package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/gateway"
	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/presence"
	"github.com/chime-dev/chime/status"
)

var secret = []byte("gateway-test-secret")

func TestVerifyToken(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	good, err := gateway.IssueToken(secret, 7, "alice", time.Hour, now)
	require.NoError(t, err)
	sign := func(m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(m, claims).SignedString(key)
		require.NoError(t, err)
		return s
	}
	exp := now.Add(time.Hour).Unix()
	for _, tc := range []struct {
		name  string
		token string
		at    time.Time
		want  error
	}{
		{"valid", good, now, nil},
		{"expired", good, now.Add(time.Hour + time.Second), gateway.ErrTokenExpired},
		{"missing", "", now, gateway.ErrTokenMissing},
		{"garbage", "not.a.token", now, gateway.ErrTokenInvalid},
		{"other secret", sign(jwt.SigningMethodHS256, []byte("other"), jwt.MapClaims{"app": 7, "sub": "a", "exp": exp}), now, gateway.ErrTokenInvalid},
		{"HS512", sign(jwt.SigningMethodHS512, secret, jwt.MapClaims{"app": 7, "sub": "a", "exp": exp}), now, gateway.ErrTokenInvalid},
		{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"app": 7, "sub": "a", "exp": exp}), now, gateway.ErrTokenInvalid},
		{"no expiry", sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"app": 7, "sub": "a"}), now, gateway.ErrTokenInvalid},
		{"no app", sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "a", "exp": exp}), now, gateway.ErrTokenInvalid},
		{"no user", sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"app": 7, "exp": exp}), now, gateway.ErrTokenInvalid},
		{"app not a number", sign(jwt.SigningMethodHS256, secret, jwt.MapClaims{"app": "7", "sub": "a", "exp": exp}), now, gateway.ErrTokenInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := gateway.VerifyToken(secret, tc.token, tc.at)
			if tc.want == nil {
				require.NoError(t, err)
				require.EqualValues(t, 7, c.App)
				require.Equal(t, "alice", c.Subject)
				return
			}
			require.ErrorIs(t, err, tc.want)
		})
	}
}

type fixture struct {
	env  *testenv.Env
	gw   *gateway.Gateway
	url  string
	reg  *presence.Registry
	stop context.CancelFunc
	done chan error
}

func start(t *testing.T) *fixture {
	env := testenv.NewRedis(t)
	reg := presence.New(presence.Config{Prefix: env.Prefix, TTL: 2 * time.Second}, env.Redis)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gw, err := gateway.New(gateway.Config{Instance: "g-" + testenv.ID(), Prefix: env.Prefix, Secret: secret,
		HeartbeatInterval: 200 * time.Millisecond, PingTimeout: 200 * time.Millisecond},
		env.Redis, reg, inbox.New(inbox.Config{Prefix: env.Prefix}, env.Redis), status.New(status.Config{Prefix: env.Prefix}, env.Redis, nil),
		clock.Real{}, env.Log, ln)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	f := &fixture{env: env, gw: gw, url: "ws://" + ln.Addr().String() + "/ws", reg: reg, stop: cancel, done: make(chan error, 1)}
	go func() { f.done <- gw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-f.done)
	})
	return f
}

// Bad, expired and missing tokens are refused with 401 and a problem
// document before the WebSocket upgrade.
func TestBadTokensAreRefused(t *testing.T) {
	f := start(t)
	expired, err := gateway.IssueToken(secret, 1, "u", time.Minute, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	forged, err := gateway.IssueToken([]byte("forged"), 1, "u", time.Hour, time.Now())
	require.NoError(t, err)
	for _, tc := range []struct{ name, token, detail string }{
		{"expired", expired, "expired"},
		{"forged", forged, "not valid"},
		{"missing", "", "required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := gateway.Dial(ctx, f.url, tc.token, nil)
			require.ErrorContains(t, err, "401")
			req, err := http.NewRequest(http.MethodGet, strings.Replace(f.url, "ws:", "http:", 1)+"?token="+tc.token, nil)
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			var p struct {
				Status int
				Detail string
			}
			require.NoError(t, json.Unmarshal(body, &p))
			require.Equal(t, 401, p.Status)
			require.Contains(t, p.Detail, tc.detail)
		})
	}
	require.Zero(t, f.gw.Connections())
}

func dial(t *testing.T, f *fixture, user string, ttl time.Duration) *gateway.Client {
	tok, err := gateway.IssueToken(secret, 1, user, ttl, time.Now())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := gateway.Dial(ctx, f.url, tok, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.CloseNow() })
	f1 := <-c.Frames
	require.Equal(t, "welcome", f1.Type)
	return c
}

func closeStatus(t *testing.T, c *gateway.Client) websocket.StatusCode {
	t.Helper()
	for range c.Frames {
	}
	var ce websocket.CloseError
	require.True(t, errors.As(c.Err(), &ce), "closed with %v", c.Err())
	return ce.Code
}

// A connection whose token expires is closed with 1008 and its presence
// removed at once.
func TestTokenExpiryClosesTheConnection(t *testing.T) {
	f := start(t)
	c := dial(t, f, "short", 1500*time.Millisecond)
	online, err := f.reg.Lookup(context.Background(), 1, []string{"short"})
	require.NoError(t, err)
	require.Len(t, online, 1)
	require.Equal(t, websocket.StatusPolicyViolation, closeStatus(t, c))
	testenv.WaitUntil(t, 2*time.Second, "presence removed", func() bool {
		online, err := f.reg.Lookup(context.Background(), 1, []string{"short"})
		return err == nil && len(online) == 0
	})
}

// A client that disconnects is offline at once; a client that stops
// answering pings (its TCP connection stays open) is closed within the
// heartbeat interval plus the ping timeout.
func TestDeadClientsGoOffline(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	c := dial(t, f, "leaver", time.Hour)
	require.NoError(t, c.Close())
	testenv.WaitUntil(t, 2*time.Second, "leaver offline", func() bool {
		online, err := f.reg.Lookup(ctx, 1, []string{"leaver"})
		return err == nil && len(online) == 0
	})

	// A client that never reads does not answer pings.
	tok, err := gateway.IssueToken(secret, 1, "mute", time.Hour, time.Now())
	require.NoError(t, err)
	ws, _, err := websocket.Dial(ctx, f.url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
	require.NoError(t, err)
	defer ws.CloseNow()
	testenv.WaitUntil(t, 2*time.Second, "mute online", func() bool {
		online, err := f.reg.Lookup(ctx, 1, []string{"mute"})
		return err == nil && len(online) == 1
	})
	start := time.Now()
	testenv.WaitUntil(t, 3*time.Second, "mute closed for not answering pings", func() bool { return f.gw.Connections() == 0 })
	t.Logf("closed %v after it was seen online (heartbeat 200ms + ping timeout 200ms)", time.Since(start).Round(time.Millisecond))
	online, err := f.reg.Lookup(ctx, 1, []string{"mute"})
	require.NoError(t, err)
	require.Empty(t, online)
}

// A graceful stop closes every connection with 1001 (go away: reconnect
// elsewhere), removes their presence and deletes the instance's stream.
func TestGracefulShutdown(t *testing.T) {
	f := start(t)
	clients := []*gateway.Client{dial(t, f, "a", time.Hour), dial(t, f, "b", time.Hour)}
	f.stop()
	for _, c := range clients {
		require.Equal(t, websocket.StatusGoingAway, closeStatus(t, c))
	}
	require.NoError(t, <-f.done)
	f.done <- nil // for the cleanup
	online, err := f.reg.Lookup(context.Background(), 1, []string{"a", "b"})
	require.NoError(t, err)
	require.Empty(t, online)
	n, err := f.env.Redis.Exists(context.Background(), presence.StreamKey(f.env.Prefix, f.gw.Instance())).Result()
	require.NoError(t, err)
	require.Zero(t, n)
}

// A pending message whose validity window ended while the user was away is
// not replayed: it leaves the inbox and is recorded as expired.
func TestReplaySkipsExpiredMessages(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	in := inbox.New(inbox.Config{Prefix: f.env.Prefix}, f.env.Redis)
	past, future := time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	_, err := in.Add(ctx, 1, "late", inbox.Message{ID: "o1", Occurrence: 1, ExpiresAt: &past}, time.Now())
	require.NoError(t, err)
	_, err = in.Add(ctx, 1, "late", inbox.Message{ID: "o2", Occurrence: 2, ExpiresAt: &future}, time.Now())
	require.NoError(t, err)
	_, err = in.Add(ctx, 1, "late", inbox.Message{ID: "o3", Occurrence: 3}, time.Now())
	require.NoError(t, err)

	tok, err := gateway.IssueToken(secret, 1, "late", time.Hour, time.Now())
	require.NoError(t, err)
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := gateway.Dial(dctx, f.url, tok, nil)
	require.NoError(t, err)
	defer c.CloseNow()
	var got []string
	for fr := range c.Frames {
		if fr.Type == "welcome" {
			require.Equal(t, 2, fr.Replayed)
			break
		}
		got = append(got, fr.Message.ID)
	}
	require.Equal(t, []string{"o2", "o3"}, got)
	left, err := in.List(ctx, 1, "late", time.Now())
	require.NoError(t, err)
	require.Len(t, left.Pending, 2, "the expired message left the inbox")
	d, err := status.New(status.Config{Prefix: f.env.Prefix}, f.env.Redis, nil).User(ctx, 1, "late", 10, inbox.OccurrenceOf)
	require.NoError(t, err)
	states := map[string]string{}
	for _, x := range d {
		states[x.Message+" "+x.Channel] = x.State
	}
	require.Equal(t, status.Expired, states["o1 inbox"])
	require.Equal(t, status.Sent, states["o2 gateway"])
}
