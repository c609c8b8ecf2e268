package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/gateway"
	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/presence"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/signing"
	"github.com/chime-dev/chime/status"
	"github.com/chime-dev/chime/store"
	"github.com/chime-dev/chime/token"
)

// fixture is a gateway on loopback in front of the test's Redis prefix and
// database, with an app whose current signing key is key.
type fixture struct {
	env   *testenv.Env
	gw    *gateway.Gateway
	url   string
	reg   *presence.Registry
	keys  *signing.Keys // the gateway's
	app   int64
	key   signing.Key
	clock clock.Clock
	stop  context.CancelFunc
	done  chan error
}

// option changes the fixture's gateway configuration, clock or the hook
// on its presence registry's Redis client.
type option func(*gateway.Config, *clock.Clock, *redis.Hook)

func withClock(c clock.Clock) option {
	return func(_ *gateway.Config, clk *clock.Clock, _ *redis.Hook) { *clk = c }
}

func withConfig(f func(*gateway.Config)) option {
	return func(c *gateway.Config, _ *clock.Clock, _ *redis.Hook) { f(c) }
}

func withPresenceHook(h redis.Hook) option {
	return func(_ *gateway.Config, _ *clock.Clock, hook *redis.Hook) { *hook = h }
}

func start(t *testing.T, opts ...option) *fixture {
	env := testenv.New(t)
	cfg := gateway.Config{Instance: "g-" + testenv.ID(), Prefix: env.Prefix,
		HeartbeatInterval: 200 * time.Millisecond, PingTimeout: 200 * time.Millisecond}
	var clk clock.Clock = clock.Real{}
	var hook redis.Hook
	for _, o := range opts {
		o(&cfg, &clk, &hook)
	}
	prdb := env.Redis
	if hook != nil {
		prdb = redis.NewClient(env.Redis.Options())
		prdb.AddHook(hook)
		t.Cleanup(func() { _ = prdb.Close() })
	}
	reg := presence.New(presence.Config{Prefix: env.Prefix, TTL: 2 * time.Second}, prdb)
	// The cache outlives every test: only an announcement makes the gateway
	// see a rotation in time.
	keys := signing.New(signing.Config{Prefix: env.Prefix, CacheTTL: time.Hour}, env.DB, env.Redis, ring(t), env.Log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gw, err := gateway.New(cfg, env.Redis, reg, inbox.New(inbox.Config{Prefix: env.Prefix}, env.Redis),
		status.New(status.Config{Prefix: env.Prefix}, env.Redis, nil), keys, clk, env.Log, ln)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	f := &fixture{env: env, gw: gw, url: "ws://" + ln.Addr().String() + "/ws", reg: reg, keys: keys, clock: clk,
		stop: cancel, done: make(chan error, 1)}
	f.app, f.key = f.newApp(t, "a")
	go func() { f.done <- gw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-f.done)
	})
	// Rotations are announced to subscribers only: wait for the gateway's.
	testenv.WaitUntil(t, 5*time.Second, "the gateway subscribed to rotations", func() bool {
		n, err := env.Redis.PubSubNumSub(context.Background(), keys.Channel()).Result()
		return err == nil && n[keys.Channel()] == 1
	})
	return f
}

var (
	ringOnce sync.Once
	ringSpec string
)

// ring returns the keyring of every test's keys (so that another Keys
// value, as in another process, opens what the gateway's sealed).
func ring(t *testing.T) *seal.Keyring {
	ringOnce.Do(func() {
		var err error
		ringSpec, err = seal.NewKey("test")
		require.NoError(t, err)
	})
	k, err := seal.Parse(ringSpec)
	require.NoError(t, err)
	return k
}

// newApp stores an app and gives it its first signing key, made by the
// keys of another process (as the API makes them).
func (f *fixture) newApp(t *testing.T, name string) (int64, signing.Key) {
	app := store.App{Name: name}
	require.NoError(t, f.env.DB.Create(&app).Error)
	key, err := f.api(t).Current(context.Background(), app.ID, f.clock.Now())
	require.NoError(t, err)
	return app.ID, key
}

// api returns signing keys as a coordinator has them.
func (f *fixture) api(t *testing.T) *signing.Keys {
	return signing.New(signing.Config{Prefix: f.env.Prefix}, f.env.DB, f.env.Redis, ring(t), f.env.Log)
}

// token is a token of the fixture's app for user, issued now for ttl.
func (f *fixture) token(t *testing.T, key signing.Key, user string, ttl time.Duration) string {
	tok, err := token.Issue(key, user, ttl, f.clock.Now())
	require.NoError(t, err)
	return tok
}

// sign signs claims with secret under kid (none if empty).
func sign(t *testing.T, m jwt.SigningMethod, secret any, kid string, claims jwt.MapClaims) string {
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(secret)
	require.NoError(t, err)
	return s
}

// oldGlobalSecret is what CHIME_GATEWAY_SECRET was: one key for every app.
var oldGlobalSecret = []byte("test-secret-0123456789abcdef")

// TestVerifyToken checks each rule of token.Verify against keys stored in
// MariaDB: tokens are built by hand, each breaking one rule, and each must
// be refused with the error that names that rule.
func TestVerifyToken(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	now := f.clock.Now()
	_, keyB := f.newApp(t, "b")
	good := f.token(t, f.key, "alice", time.Hour)
	iat, exp := now.Unix(), now.Add(time.Hour).Unix()
	claims := func(kv ...any) jwt.MapClaims {
		c := jwt.MapClaims{"app": f.app, "sub": "alice", "iat": iat, "exp": exp}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	secret := []byte(f.key.Secret)
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, secret, f.key.ID, c) }
	for _, tc := range []struct {
		name   string
		token  string
		at     time.Time
		want   error
		detail string
	}{
		{"valid", good, now, nil, ""},
		{"expired", good, now.Add(time.Hour + time.Second), token.ErrExpired, ""},
		{"missing", "", now, token.ErrMissing, ""},
		{"garbage", "not.a.token", now, token.ErrInvalid, ""},
		{"old global secret, no kid", sign(t, jwt.SigningMethodHS256, oldGlobalSecret, "", claims()), now, token.ErrInvalid, "kid"},
		{"old global secret, the app's kid", sign(t, jwt.SigningMethodHS256, oldGlobalSecret, f.key.ID, claims()), now, token.ErrInvalid, ""},
		{"unknown kid", sign(t, jwt.SigningMethodHS256, secret, "sk_000000000000000000000000", claims()), now, token.ErrInvalid, "names no signing key"},
		{"app B's key claiming app A", sign(t, jwt.SigningMethodHS256, []byte(keyB.Secret), keyB.ID, claims()), now, token.ErrInvalid, "names no signing key of app"},
		{"HS512", sign(t, jwt.SigningMethodHS512, secret, f.key.ID, claims()), now, token.ErrInvalid, ""},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, f.key.ID, claims()), now, token.ErrInvalid, ""},
		{"no expiry", hs(claims("exp", nil)), now, token.ErrInvalid, "exp is required"},
		{"no iat", hs(claims("iat", nil)), now, token.ErrInvalid, "iat is required"},
		{"iat in the future", hs(claims("iat", now.Add(2*time.Minute).Unix())), now, token.ErrInvalid, "iat is in the future"},
		{"lives over 24h", hs(claims("exp", now.Add(24*time.Hour+time.Second).Unix())), now, token.ErrInvalid, "at most 24h0m0s"},
		{"iat long ago, exp over 24h away", hs(claims("iat", now.Add(-time.Hour).Unix(), "exp", now.Add(24*time.Hour+time.Minute).Unix())), now, token.ErrInvalid, "at most 24h0m0s"},
		{"no app", hs(claims("app", nil)), now, token.ErrInvalid, "app"},
		{"app not a number", hs(claims("app", "7")), now, token.ErrInvalid, ""},
		{"no user", hs(claims("sub", nil)), now, token.ErrInvalid, "sub is required"},
		{"sub with NUL", hs(claims("sub", "al\x00ice")), now, token.ErrInvalid, "sub must not contain"},
		{"sub with newline", hs(claims("sub", "al\nice")), now, token.ErrInvalid, "sub must not contain"},
		{"sub with space", hs(claims("sub", "al ice")), now, token.ErrInvalid, "sub must not contain"},
		{"sub over 191 bytes", hs(claims("sub", strings.Repeat("a", 192))), now, token.ErrInvalid, "sub must be at most 191 bytes"},
		{"sub with a control character", hs(claims("sub", "al\u0085ice")), now, token.ErrInvalid, "sub must not contain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := token.Verify(ctx, f.keys, tc.token, tc.at, token.DefaultMaxLifetime)
			if tc.want == nil {
				require.NoError(t, err)
				require.Equal(t, f.app, c.App)
				require.Equal(t, "alice", c.Subject)
				require.Equal(t, f.key.ID, c.KeyID)
				return
			}
			require.ErrorIs(t, err, tc.want)
			require.ErrorContains(t, err, tc.detail)
		})
	}
	// Signed with the right key, a valid token of app B passes.
	c, err := token.Verify(ctx, f.keys, f.token(t, keyB, "bob", time.Hour), now, token.DefaultMaxLifetime)
	require.NoError(t, err)
	require.Equal(t, keyB.App, c.App)
}

// refused dials with token and checks that the handshake is refused with
// status and a problem document whose detail contains detail.
func (f *fixture) refused(t *testing.T, hc *http.Client, token string, status int, detail string) http.Header {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.Replace(f.url, "ws:", "http:", 1), nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, status, resp.StatusCode)
	require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var p struct {
		Status int
		Detail string
	}
	require.NoError(t, json.Unmarshal(body, &p))
	t.Logf("%d %s", resp.StatusCode, p.Detail)
	require.Equal(t, status, p.Status)
	require.Contains(t, p.Detail, detail)
	return resp.Header
}

// Bad, expired and missing tokens, a token signed with the old global
// secret, one signed with app B's key but claiming app A (and so reading
// app A's user's inbox), one that lives too long and one with a bad sub are
// refused with 401 and a problem document before the WebSocket upgrade.
func TestBadTokensAreRefused(t *testing.T) {
	f := start(t)
	now := f.clock.Now()
	_, keyB := f.newApp(t, "b")
	expired, err := token.Issue(f.key, "u", time.Minute, now.Add(-time.Hour))
	require.NoError(t, err)
	forged := f.key
	forged.Secret = "forged"
	forgedTok := f.token(t, forged, "u", time.Hour)
	claims := jwt.MapClaims{"app": f.app, "sub": "u", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	long := f.token(t, f.key, "u", 25*time.Hour)
	for _, tc := range []struct{ name, token, detail string }{
		{"expired", expired, "expired"},
		{"forged", forgedTok, "not valid"},
		{"missing", "", "required"},
		{"old global secret", sign(t, jwt.SigningMethodHS256, oldGlobalSecret, "", claims), "kid"},
		{"app B's key claiming app A", sign(t, jwt.SigningMethodHS256, []byte(keyB.Secret), keyB.ID, claims), "names no signing key of app"},
		{"over the lifetime", long, "at most 24h0m0s"},
		{"bad sub", f.token(t, f.key, "u\nv", time.Hour), "sub must not contain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := gateway.Dial(ctx, f.url, tc.token, nil)
			require.ErrorContains(t, err, "401")
			h := f.refused(t, nil, tc.token, http.StatusUnauthorized, tc.detail)
			require.Contains(t, h.Get("WWW-Authenticate"), "invalid_token")
		})
	}
	require.Zero(t, f.gw.Connections())
}

func dial(t *testing.T, f *fixture, user string, ttl time.Duration) *gateway.Client {
	return dialWith(t, f, nil, f.key, user, ttl)
}

// dialWith connects user with a token signed by key, through hc (nil:
// the default client), and waits for the welcome.
func dialWith(t *testing.T, f *fixture, hc *http.Client, key signing.Key, user string, ttl time.Duration) *gateway.Client {
	t.Helper()
	tok := f.token(t, key, user, ttl)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := gateway.Dial(ctx, f.url, tok, hc)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.CloseNow() })
	f1 := <-c.Frames
	require.Equal(t, "welcome", f1.Type)
	return c
}

func closeStatus(t *testing.T, c *gateway.Client) websocket.StatusCode {
	t.Helper()
	return closeError(t, c).Code
}

// closeError waits for c to close and returns the close frame it got.
func closeError(t *testing.T, c *gateway.Client) websocket.CloseError {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for open := true; open; {
		select {
		case _, open = <-c.Frames:
		case <-deadline:
			t.Fatal("the connection is still open after 10s")
		}
	}
	var ce websocket.CloseError
	require.True(t, errors.As(c.Err(), &ce), "closed with %v", c.Err())
	return ce
}

// A connection whose token expires is closed with 1008 and its presence
// removed at once.
func TestTokenExpiryClosesTheConnection(t *testing.T) {
	f := start(t)
	c := dial(t, f, "short", 1500*time.Millisecond)
	online, err := f.reg.Lookup(context.Background(), f.app, []string{"short"})
	require.NoError(t, err)
	require.Len(t, online, 1)
	require.Equal(t, websocket.StatusPolicyViolation, closeStatus(t, c))
	testenv.WaitUntil(t, 2*time.Second, "presence removed", func() bool {
		online, err := f.reg.Lookup(context.Background(), f.app, []string{"short"})
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
		online, err := f.reg.Lookup(ctx, f.app, []string{"leaver"})
		return err == nil && len(online) == 0
	})

	// A client that never reads does not answer pings.
	tok := f.token(t, f.key, "mute", time.Hour)
	ws, _, err := websocket.Dial(ctx, f.url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
	require.NoError(t, err)
	defer ws.CloseNow()
	testenv.WaitUntil(t, 2*time.Second, "mute online", func() bool {
		online, err := f.reg.Lookup(ctx, f.app, []string{"mute"})
		return err == nil && len(online) == 1
	})
	start := time.Now()
	testenv.WaitUntil(t, 3*time.Second, "mute closed for not answering pings", func() bool { return f.gw.Connections() == 0 })
	t.Logf("closed %v after it was seen online (heartbeat 200ms + ping timeout 200ms)", time.Since(start).Round(time.Millisecond))
	online, err := f.reg.Lookup(ctx, f.app, []string{"mute"})
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
	online, err := f.reg.Lookup(context.Background(), f.app, []string{"a", "b"})
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
	_, err := in.Add(ctx, f.app, "late", inbox.Message{ID: "o1", Occurrence: 1, ExpiresAt: &past}, time.Now())
	require.NoError(t, err)
	_, err = in.Add(ctx, f.app, "late", inbox.Message{ID: "o2", Occurrence: 2, ExpiresAt: &future}, time.Now())
	require.NoError(t, err)
	_, err = in.Add(ctx, f.app, "late", inbox.Message{ID: "o3", Occurrence: 3}, time.Now())
	require.NoError(t, err)

	tok := f.token(t, f.key, "late", time.Hour)
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
	left, err := in.List(ctx, f.app, "late", time.Now())
	require.NoError(t, err)
	require.Len(t, left.Pending, 2, "the expired message left the inbox")
	marks, err := in.Marks(ctx, f.app, "late")
	require.NoError(t, err)
	d, err := status.New(status.Config{Prefix: f.env.Prefix}, f.env.Redis, nil).User(ctx, f.app, "late", 10, inbox.OccurrenceOf, marks)
	require.NoError(t, err)
	states := map[string]string{}
	for _, x := range d {
		states[x.Message+" "+x.Channel] = x.State
	}
	require.Equal(t, status.Expired, states["o1 inbox"])
	require.Equal(t, status.Sent, states["o2 gateway"])
}

// holdRegistrations is a hook on the presence registry's client: it
// counts the pipelines that register connections and holds the first until
// release is closed.
type holdRegistrations struct {
	mu        sync.Mutex
	pipelines int
	release   chan struct{}
}

func (h *holdRegistrations) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *holdRegistrations) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (h *holdRegistrations) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		h.pipelines++
		first := h.pipelines == 1
		h.mu.Unlock()
		if first {
			<-h.release
		}
		return next(ctx, cmds)
	}
}

func (h *holdRegistrations) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pipelines
}

// Connections that open while a registration is in flight are registered
// together after it. The test holds the first connection's registration
// (a hook on the registry's client), opens 20 more meanwhile, waits until
// all 21 are admitted, releases it, and checks that every client gets its
// welcome and is online in presence, in fewer than 21 round trips (20
// held behind one are registered in one or a few, not one each).
func TestConnectsRegisteredTogether(t *testing.T) {
	h := &holdRegistrations{release: make(chan struct{})}
	f := start(t, withPresenceHook(h))
	users := []string{"first"}
	for i := range 20 {
		users = append(users, "u"+strings.Repeat("x", i))
	}
	welcomed := make(chan error, len(users))
	for i, u := range users {
		if i == 1 {
			testenv.WaitUntil(t, 5*time.Second, "the first registration held", func() bool { return h.count() == 1 })
		}
		tok := f.token(t, f.key, u, time.Hour)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := gateway.Dial(ctx, f.url, tok, nil)
			if err != nil {
				welcomed <- err
				return
			}
			t.Cleanup(func() { _ = c.CloseNow() })
			if fr := <-c.Frames; fr.Type != "welcome" {
				err = errors.New("no welcome: " + fr.Type)
			}
			welcomed <- err
		}()
	}
	testenv.WaitUntil(t, 5*time.Second, "all admitted", func() bool { return f.gw.Connections() == len(users) })
	close(h.release)
	for range users {
		require.NoError(t, <-welcomed)
	}
	trips := h.count() // registrations and any heartbeat refresh
	online, err := f.reg.Lookup(context.Background(), f.app, users)
	require.NoError(t, err)
	require.Len(t, online, len(users))
	require.Less(t, trips, len(users), "registered together")
	t.Logf("%d connections registered in %d round trips", len(users), trips)
}

// The heartbeat's refresh keeps open connections online past several
// presence TTLs (2s here), and puts back a connection whose presence went
// missing while it stayed open: the test deletes one user's presence field,
// as when it lapsed while Redis was unreachable, and checks the user is
// online again within a few heartbeats while the other never went offline.
func TestRefreshKeepsConnectionsOnline(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	dial(t, f, "stays", time.Hour)
	dial(t, f, "lost", time.Hour)
	began := time.Now()
	testenv.WaitUntil(t, 10*time.Second, "both online for 2.5 presence TTLs", func() bool {
		online, err := f.reg.Lookup(ctx, f.app, []string{"stays", "lost"})
		require.NoError(t, err)
		require.Len(t, online, 2, "after %v", time.Since(began))
		return time.Since(began) > 5*time.Second
	})
	require.NoError(t, f.env.Redis.HDel(ctx, presence.Key(f.env.Prefix, f.app, "lost"), "lost").Err())
	online, err := f.reg.Lookup(ctx, f.app, []string{"lost"})
	require.NoError(t, err)
	require.Empty(t, online)
	testenv.WaitUntil(t, 2*time.Second, "lost registered again by the heartbeat", func() bool {
		online, err := f.reg.Lookup(ctx, f.app, []string{"stays", "lost"})
		require.NoError(t, err)
		require.Contains(t, online, "stays")
		return len(online) == 2
	})
}
