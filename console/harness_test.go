package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/console"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/sender/webhook/sink"
	"github.com/chime-dev/chime/store"
)

// password is every test user's.
const password = "correct horse battery staple"

// bundle is a running Chime on real Redis and MariaDB (a coordinator,
// serving the API and the console, and a worker delivering to a webhook
// sink on loopback), with two apps: A with an editor and a viewer, B with
// an editor.
type bundle struct {
	t          *testing.T
	env        *testenv.Env
	url        string
	keyA, keyB string
	sink       *sink.Sink
	// stop shuts the coordinator and worker down and returns their error.
	stop func() error
}

func setup(t *testing.T) *bundle {
	t.Helper()
	env := testenv.New(t)
	b := &bundle{t: t, env: env, sink: sink.New()}
	hook := httptest.NewServer(b.sink)
	t.Cleanup(hook.Close)
	cfg := chime.Config{
		RedisURL: env.RedisURL, MySQLDSN: env.DSN, Prefix: env.Prefix, Queue: env.Queue,
		LeaderTTL: 2 * time.Second, PlanInterval: 5 * time.Second, Horizon: 26 * time.Hour,
		PrepareLead: time.Second, AckTimeout: 2 * time.Second, QueueTimeout: 10 * time.Second,
		Concurrency: 8, ChunkSize: 100, LeaseTTL: 2 * time.Second, Sender: "webhook", WebhookURL: hook.URL + "/hook",
		WebhookTimeout: 5 * time.Second, ShutdownTimeout: 5 * time.Second, ReplicaID: "c1",
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, ctx := errgroup.WithContext(ctx)
	b.stop = func() error { cancel(); return g.Wait() }
	t.Cleanup(func() { require.NoError(t, b.stop()) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b.url = "http://" + ln.Addr().String()
	rdb, err := chime.OpenRedis(ctx, cfg.RedisURL)
	require.NoError(t, err)
	t.Cleanup(func() { rdb.Close() })
	c := chime.NewCoordinator(cfg, env.DB, rdb, clock.Real{}, env.Log, ln)
	g.Go(func() error { return c.Run(ctx) })
	wcfg := cfg
	wcfg.ReplicaID = "w1"
	s, err := chime.NewSender(ctx, wcfg, env.DB, env.Redis, env.Log)
	require.NoError(t, err)
	wrdb, err := chime.OpenRedis(ctx, cfg.RedisURL)
	require.NoError(t, err)
	w := chime.NewWorker(wcfg, env.DB, wrdb, s, clock.Real{}, env.Log)
	g.Go(func() error { defer wrdb.Close(); return w.Run(ctx) })

	appA, _, keyA, err := store.CreateApp(ctx, env.DB, "app-a", "")
	require.NoError(t, err)
	appB, _, keyB, err := store.CreateApp(ctx, env.DB, "app-b", "")
	require.NoError(t, err)
	b.keyA, b.keyB = keyA, keyB
	hash, err := console.HashPassword(password)
	require.NoError(t, err)
	for _, u := range []store.ConsoleUser{
		{AppID: appA.ID, Email: "editor@a.example", Role: store.RoleEditor},
		{AppID: appA.ID, Email: "viewer@a.example", Role: store.RoleViewer},
		{AppID: appB.ID, Email: "editor@b.example", Role: store.RoleEditor},
	} {
		u.PasswordHash = hash
		_, err := store.CreateConsoleUser(ctx, env.DB, u)
		require.NoError(t, err)
	}
	testenv.WaitUntil(t, 10*time.Second, "coordinator up", func() bool {
		res, err := http.Get(b.url + "/livez")
		if err == nil {
			res.Body.Close()
		}
		return err == nil && res.StatusCode == 200
	})
	return b
}

// call sends one API request with key and decodes the answer into out.
func (b *bundle) call(key, method, path, contentType string, body any, out any) int {
	b.t.Helper()
	var r io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(v)
	default:
		raw, err := json.Marshal(v)
		require.NoError(b.t, err)
		r = bytes.NewReader(raw)
		contentType = "application/json"
	}
	req, err := http.NewRequest(method, b.url+path, r)
	require.NoError(b.t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(b.t, err)
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		require.NoError(b.t, json.Unmarshal(raw, out), string(raw))
	}
	if res.StatusCode >= 300 {
		b.t.Logf("%s %s: %d %s", method, path, res.StatusCode, raw)
	}
	return res.StatusCode
}

// chromium finds a Chromium binary, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium binary on PATH and none could be installed (make test installs Debian's chromium with apt-get)")
	return ""
}

// browser starts a headless Chromium at width×height and returns its
// context.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)), chromedp.NoSandbox, chromedp.WindowSize(width, height),
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel2)
	require.NoError(t, chromedp.Do(ctx))
	return ctx
}

// do runs browser steps with a timeout.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, steps...))
}

// get runs one browser action and returns its value.
func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	require.NoError(t, err)
	return v
}

// css is a CSS selector.
func css(s string) chromedp.CSS { return chromedp.CSS(s) }

// shot saves a screenshot of the page as NAME.png in the directory
// CHIME_CONSOLE_SHOTS names, if it is set (make console-shots).
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("CHIME_CONSOLE_SHOTS")
	if dir == "" {
		return
	}
	png := get(t, ctx, chromedp.FullScreenshot(100))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

// login signs in as email through the sign-in page.
func (b *bundle) login(t *testing.T, ctx context.Context, email string) {
	t.Helper()
	do(t, ctx,
		chromedp.Navigate(b.url+"/console/login"),
		chromedp.WaitVisible(css("#email")),
		chromedp.SendKeys(css("#email"), email),
		chromedp.SendKeys(css("#password"), password),
		chromedp.Click(css("#signin")),
		chromedp.WaitVisible(css("#reminders")),
	)
}

func (b *bundle) logout(t *testing.T, ctx context.Context) {
	t.Helper()
	do(t, ctx, chromedp.Click(css(".who button")), chromedp.WaitVisible(css("#signin")))
}

func jsonBody(t *testing.T, v any) io.Reader {
	t.Helper()
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	return bytes.NewReader(raw)
}

// raw sends one JSON API request with key and returns the answer's body.
func (b *bundle) raw(key, method, path string, body any) string {
	b.t.Helper()
	req, err := http.NewRequest(method, b.url+path, jsonBody(b.t, body))
	require.NoError(b.t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	require.NoError(b.t, err)
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return string(out)
}
