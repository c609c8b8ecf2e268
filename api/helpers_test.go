package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/deliveryevent"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/policy"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/status"
	"github.com/chime-dev/chime/store"
)

// bundle is one test's running API: a real HTTP server on loopback in front
// of a database and Redis prefix of the test's own, and two apps.
type bundle struct {
	t      *testing.T
	env    *testenv.Env
	url    string
	client *http.Client
	index  *grouping.Index
	api    *api.API
	// db is the API's database pool; its statements are logged to logs.
	db *gorm.DB
	// logs holds what the API logged.
	logs *logBuffer
	// App A owns the test's data; app B is the other tenant.
	appA, appB store.App
	keyA, keyB string
	// keyring seals web devices' secrets (nil: none configured).
	keyring *seal.Keyring
	// checkResponse, when set, sees every answer req reads (the spec's
	// response validation, by default).
	checkResponse func(t *testing.T, req *http.Request, res response)
}

// setup is setupWith a keyring, as a coordinator with CHIME_SECRET_KEYS.
func setup(t *testing.T) *bundle {
	t.Helper()
	return setupWith(t, api.Config{Keyring: newKeyring(t)})
}

// newKeyring returns a keyring of one fresh key.
func newKeyring(t *testing.T) *seal.Keyring {
	t.Helper()
	spec, err := seal.NewKey("test")
	require.NoError(t, err)
	k, err := seal.Parse(spec)
	require.NoError(t, err)
	return k
}

// setupWith is setup with cfg; ChangesChannel is set to the test's own.
func setupWith(t *testing.T, cfg api.Config) *bundle {
	t.Helper()
	return setupOn(t, cfg, "")
}

// setupOn is setupWith with params ("innodb_lock_wait_timeout=1") added
// to the DSN of the API's database pool.
func setupOn(t *testing.T, cfg api.Config, params string) *bundle {
	t.Helper()
	return setupEnvOn(t, func(*testenv.Env) api.Config { return cfg }, params)
}

// setupEnv is setupWith with a configuration made for the test's servers.
func setupEnv(t *testing.T, config func(env *testenv.Env) api.Config) *bundle {
	t.Helper()
	return setupEnvOn(t, config, "")
}

// setupEnvOn is setupEnv with params added to the DSN of the API's pool.
func setupEnvOn(t *testing.T, config func(env *testenv.Env) api.Config, params string) *bundle {
	t.Helper()
	env := testenv.New(t)
	cfg := config(env)
	cfg.ChangesChannel = env.Prefix + "changes"
	if cfg.Inbox == nil {
		cfg.Inbox = inbox.New(inbox.Config{Prefix: env.Prefix}, env.Redis)
	}
	cfg.Announcements = inbox.NewAnnouncements(inbox.AnnouncementConfig{Prefix: env.Prefix}, env.Redis)
	cfg.Status = status.New(status.Config{Prefix: env.Prefix}, env.Redis, env.DB)
	cfg.Opens = deliveryevent.NewOpens(deliveryevent.OpensConfig{Prefix: env.Prefix}, env.Redis, env.DB, nil, env.Log)
	cfg.Policy = policy.New(policy.Config{Prefix: env.Prefix}, env.Redis, env.DB)
	// The API has a pool of its own, logging to logs with what it logs.
	logs := &logBuffer{}
	log := slog.New(slog.NewMultiHandler(env.Log.Handler(), slog.NewTextHandler(logs, nil)))
	dsn := env.DSN
	if params != "" {
		dsn += map[bool]string{true: "&", false: "?"}[strings.Contains(dsn, "?")] + params
	}
	db, err := store.Open(dsn, log)
	require.NoError(t, err)
	t.Cleanup(func() {
		if s, err := db.DB(); err == nil {
			s.Close()
		}
	})
	index := grouping.NewIndex(env.Redis, db, env.Prefix)
	a := api.New(cfg, db, env.Redis, index, log)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)

	b := &bundle{t: t, env: env, url: srv.URL, client: srv.Client(), index: index, api: a, db: db, logs: logs, keyring: cfg.Keyring, checkResponse: matchesSpec}
	b.appA, b.keyA, err = api.CreateApp(context.Background(), env.DB, "app-a")
	require.NoError(t, err)
	b.appB, b.keyB, err = api.CreateApp(context.Background(), env.DB, "app-b")
	require.NoError(t, err)
	return b
}

// response is a read HTTP response.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// rawBody is sent as is, without JSON encoding.
type rawBody []byte

// req sends a request with the given API key (none if empty). body is nil,
// rawBody, or a value to encode as JSON. Extra header pairs follow the body;
// Content-Type defaults to application/json when there is a body.
func (b *bundle) req(method, path, key string, body any, header ...string) response {
	b.t.Helper()
	var r io.Reader
	switch v := body.(type) {
	case nil:
	case rawBody:
		r = bytes.NewReader(v)
	default:
		data, err := json.Marshal(v)
		require.NoError(b.t, err)
		r = bytes.NewReader(data)
	}
	hr, err := http.NewRequest(method, b.url+path, r)
	require.NoError(b.t, err)
	if key != "" {
		hr.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	require.Zero(b.t, len(header)%2, "header pairs")
	for i := 0; i < len(header); i += 2 {
		hr.Header.Set(header[i], header[i+1])
	}
	res, err := b.client.Do(hr)
	require.NoError(b.t, err)
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	require.NoError(b.t, err)
	out := response{Status: res.StatusCode, Header: res.Header, Body: data}
	if b.checkResponse != nil {
		b.checkResponse(b.t, hr, out)
	}
	return out
}

// as sends a request as app A.
func (b *bundle) as(method, path string, body any, header ...string) response {
	b.t.Helper()
	return b.req(method, path, b.keyA, body, header...)
}

// requireJSON checks the status and content type of a success and decodes
// the body into v (unless v is nil).
func requireJSON(t *testing.T, r response, status int, v any) {
	t.Helper()
	require.Equal(t, status, r.Status, "body: %s", r.Body)
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	if v != nil {
		require.NoError(t, json.Unmarshal(r.Body, v), "body: %s", r.Body)
	}
}

// requireProblem checks that r is a problem document with the status and
// that its detail and field errors together mention every one of mention.
func requireProblem(t *testing.T, r response, status int, mention ...string) api.Problem {
	t.Helper()
	require.Equal(t, status, r.Status, "body: %s", r.Body)
	require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"), "body: %s", r.Body)
	var p api.Problem
	require.NoError(t, json.Unmarshal(r.Body, &p), "body: %s", r.Body)
	require.Equal(t, status, p.Status)
	require.Equal(t, http.StatusText(status), p.Title)
	require.NotEmpty(t, p.Detail)
	text := p.Detail
	for _, e := range p.Errors {
		text += "\n" + e.Field + ": " + e.Message
	}
	for _, m := range mention {
		require.Contains(t, text, m, "problem: %s", r.Body)
	}
	return p
}

// reminder is a request body for PUT /v1/reminders/{key}.
func reminder(title string, times ...api.ReminderTime) map[string]any {
	return map[string]any{"title": title, "times": times}
}

func at(location, zone, local string) api.ReminderTime {
	return api.ReminderTime{Location: location, Zone: zone, LocalTime: local}
}

// putReminder creates or replaces a reminder of app A and fails the test
// unless that succeeds.
func (b *bundle) putReminder(key string, body any) api.Reminder {
	b.t.Helper()
	r := b.as(http.MethodPut, "/v1/reminders/"+key, body)
	require.Contains(b.t, []int{http.StatusCreated, http.StatusOK}, r.Status, "body: %s", r.Body)
	var out api.Reminder
	requireJSON(b.t, r, r.Status, &out)
	return out
}

// subscribe registers subscribers with the bulk endpoint as app A.
func (b *bundle) subscribe(key string, subs []sub) {
	b.t.Helper()
	r := b.as(http.MethodPost, "/v1/reminders/"+key+"/subscribers", map[string]any{"subscribers": subs})
	var out map[string]int
	requireJSON(b.t, r, http.StatusOK, &out)
	require.Equal(b.t, len(subs), out["registered"])
}

type sub struct {
	UserID   string `json:"user_id"`
	Location string `json:"location"`
}

// count returns the rows of model matching the optional condition.
func (b *bundle) count(model any, cond ...any) int64 {
	b.t.Helper()
	q := b.env.DB.Model(model)
	if len(cond) > 0 {
		q = q.Where(cond[0], cond[1:]...)
	}
	var n int64
	require.NoError(b.t, q.Count(&n).Error)
	return n
}

// counts returns the row counts of every table the API writes.
func (b *bundle) counts() map[string]int64 {
	b.t.Helper()
	return map[string]int64{
		"reminders":      b.count(&store.Reminder{}),
		"locations":      b.count(&store.Location{}),
		"reminder_times": b.count(&store.ReminderTime{}),
		"subscriptions":  b.count(&store.Subscription{}),
		"occurrences":    b.count(&store.Occurrence{}),
	}
}

// storedReminder returns app A's row of reminder key.
func (b *bundle) storedReminder(key string) store.Reminder {
	b.t.Helper()
	var rem store.Reminder
	require.NoError(b.t, b.env.DB.Where("app_id = ? AND `key` = ?", b.appA.ID, key).First(&rem).Error)
	return rem
}

// loc returns the index location of app A's reminder key at location name.
func (b *bundle) loc(key, name string) grouping.Loc {
	b.t.Helper()
	var l store.Location
	require.NoError(b.t, b.env.DB.Where("app_id = ? AND name = ?", b.appA.ID, name).First(&l).Error)
	return grouping.Loc{Reminder: b.storedReminder(key).ID, Location: l.ID}
}

// indexed returns every user in the index of l, by group, after making sure
// the index is built.
func (b *bundle) indexed(l grouping.Loc, groups int) map[string]int {
	b.t.Helper()
	ctx := context.Background()
	require.NoError(b.t, b.index.EnsureBuilt(ctx, l))
	y, err := b.index.Groups(ctx, l)
	require.NoError(b.t, err)
	if groups == 0 {
		groups = y.N // sized per location
	}
	require.Equal(b.t, groups, y.N, "the location's group count")
	out := map[string]int{}
	for g := range groups {
		users, err := b.index.Members(ctx, l, groups, g)
		require.NoError(b.t, err)
		for _, u := range users {
			prev, dup := out[u]
			require.False(b.t, dup, "user %s in groups %d and %d", u, prev, g)
			out[u] = g
		}
	}
	return out
}

// requireMembers fails with a short account of the differences unless got
// (user -> group) equals want; it keeps failures on 10,000 users readable.
func requireMembers(t *testing.T, want, got map[string]int, what string) {
	t.Helper()
	var missing, extra, moved []string
	for u, g := range want {
		switch h, ok := got[u]; {
		case !ok:
			missing = append(missing, u)
		case h != g:
			moved = append(moved, fmt.Sprintf("%s in group %d, want %d", u, h, g))
		}
	}
	for u := range got {
		if _, ok := want[u]; !ok {
			extra = append(extra, u)
		}
	}
	first := func(s []string) []string {
		slices.Sort(s)
		return s[:min(len(s), 5)]
	}
	require.True(t, len(missing)+len(extra)+len(moved) == 0,
		"%s: %d users missing (%v), %d unexpected (%v), %d in the wrong group (%v)",
		what, len(missing), first(missing), len(extra), first(extra), len(moved), first(moved))
}

// indexSnapshot returns the test's index sets in Redis, key -> sorted
// members (a packed string's whole value), so that a request can be shown to have left the index as it was.
func (b *bundle) indexSnapshot() map[string][]string {
	b.t.Helper()
	ctx := context.Background()
	keys, err := b.env.Redis.Keys(ctx, b.env.Prefix+"idx:*").Result()
	require.NoError(b.t, err)
	out := map[string][]string{}
	for _, k := range keys {
		typ, err := b.env.Redis.Type(ctx, k).Result()
		require.NoError(b.t, err)
		if typ == "string" && strings.Contains(k, ":p:") {
			// A packed string: its entries, as stored.
			out[k] = []string{b.env.Redis.Get(ctx, k).Val()}
			continue
		}
		if typ != "set" {
			out[k] = nil
			continue
		}
		members, err := b.env.Redis.SMembers(ctx, k).Result()
		require.NoError(b.t, err)
		slices.Sort(members)
		out[k] = members
	}
	return out
}

func repeat(s string, n int) string { return strings.Repeat(s, n) }

// logBuffer keeps log output written from any goroutine.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// longest returns the length of the longest line logged.
func (l *logBuffer) longest() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for line := range strings.SplitSeq(l.b.String(), "\n") {
		n = max(n, len(line))
	}
	return n
}
