package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/apikey"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/store"
)

// bundle is a database and Redis prefix of the test's own, the environment
// chime reads them from, and the coordinators' APIs started on them.
type bundle struct {
	t       *testing.T
	env     *testenv.Env
	environ []string
}

func setup(t *testing.T) *bundle {
	t.Helper()
	env := testenv.New(t)
	return &bundle{t: t, env: env, environ: []string{
		"MYSQL_DSN=" + env.DSN, "REDIS_URL=" + env.RedisURL, "CHIME_REDIS_PREFIX=" + env.Prefix, "CHIME_LOG_LEVEL=warn",
	}}
}

// chime runs the command with args and returns its output.
func (b *bundle) chime(args ...string) (string, error) {
	b.t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, b.environ, &out, &errOut)
	return out.String(), err
}

func (b *bundle) mustChime(args ...string) string {
	b.t.Helper()
	out, err := b.chime(args...)
	require.NoError(b.t, err, "chime %s", strings.Join(args, " "))
	return out
}

// coordinator starts an API as a coordinator replica runs it: its key
// resolver listens on the channel the configuration names. It caches
// working keys for a day, so that within a test only an announcement makes
// it drop one. It returns a function that answers the status of
// GET /v1/reminders with a key.
func (b *bundle) coordinator() func(key string) int {
	b.t.Helper()
	keys := apikey.New(apikey.Config{Channel: b.env.Prefix + "keys", TTL: 24 * time.Hour}, b.env.DB, b.env.Redis, b.env.Log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- keys.Run(ctx) }()
	b.t.Cleanup(func() {
		cancel()
		require.NoError(b.t, <-done)
	})
	testenv.WaitUntil(b.t, 10*time.Second, "the key resolver to subscribe", keys.Listening)
	a := api.New(api.Config{Keys: keys}, b.env.DB, b.env.Redis, grouping.NewIndex(b.env.Redis, b.env.DB, b.env.Prefix), b.env.Log)
	srv := httptest.NewServer(a.Handler())
	b.t.Cleanup(srv.Close)
	return func(key string) int {
		req, err := http.NewRequest("GET", srv.URL+"/v1/reminders", nil)
		require.NoError(b.t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := srv.Client().Do(req)
		require.NoError(b.t, err)
		res.Body.Close()
		return res.StatusCode
	}
}

var shownKey = regexp.MustCompile(`api key \(shown once\): (chk_[0-9a-f]{48})\n$`)

// key returns the key a create command printed.
func key(t *testing.T, out string) string {
	t.Helper()
	m := shownKey.FindStringSubmatch(out)
	require.NotNil(t, m, "output: %q", out)
	return m[1]
}

// rows splits a table into its lines' fields, checking the header.
func rows(t *testing.T, out, header string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	require.Equal(t, header, strings.Join(strings.Fields(lines[0]), " "), "output:\n%s", out)
	var res [][]string
	for _, l := range lines[1:] {
		res = append(res, strings.Fields(l))
	}
	return res
}

// requireOneLine checks that err is a one-line message mentioning every one
// of mention.
func requireOneLine(t *testing.T, err error, mention ...string) {
	t.Helper()
	require.Error(t, err)
	msg := err.Error()
	require.NotContains(t, msg, "\n", "one line: %q", msg)
	for _, m := range mention {
		require.Contains(t, msg, m)
	}
}

// Injected: an app created, a second key added and both listed, by name and
// by ID. Checked: each create prints its key once in the style of
// "chime app create", both keys work on a coordinator, and the lists show
// the apps and keys with their prefixes and states.
func TestAppAndKeyCommands(t *testing.T) {
	b := setup(t)
	coord := b.coordinator()
	out := b.mustChime("app", "create", "Toko Murah")
	require.Regexp(t, `^app \d+ "Toko Murah"\napi key \(shown once\): chk_[0-9a-f]{48}\n$`, out)
	first := key(t, out)
	app, err := store.FindAppNamed(context.Background(), b.env.DB, "Toko Murah")
	require.NoError(t, err)

	out = b.mustChime("app", "key", "create", "Toko Murah", "-name", "ci")
	require.Regexp(t, `^key \d+ "ci" of app \d+ "Toko Murah"\napi key \(shown once\): chk_[0-9a-f]{48}\n$`, out)
	second := key(t, out)
	require.NotEqual(t, first, second)
	require.Equal(t, http.StatusOK, coord(first))
	require.Equal(t, http.StatusOK, coord(second))

	apps := rows(t, b.mustChime("app", "list"), "ID CREATED NAME")
	require.Len(t, apps, 1)
	require.Equal(t, []string{"Toko", "Murah"}, apps[0][2:])

	for _, ref := range []string{"Toko Murah", apps[0][0]} {
		keys := rows(t, b.mustChime("app", "key", "list", ref), "ID PREFIX STATE CREATED LAST USED EXPIRES REVOKED NAME")
		require.Len(t, keys, 2)
		require.Equal(t, first[:store.KeyPrefixLen], keys[0][1])
		require.Equal(t, "active", keys[0][2])
		require.NotEqual(t, "-", keys[0][4], "a used key shows its last use")
		require.Equal(t, []string{"-", "-"}, keys[0][5:7])
		require.Len(t, keys[0], 7, "the first key has no name")
		require.Equal(t, second[:store.KeyPrefixLen], keys[1][1])
		require.Equal(t, "ci", keys[1][7])
	}
	var n int64
	require.NoError(t, b.env.DB.Model(&store.APIKey{}).Where("app_id = ?", app.ID).Count(&n).Error)
	require.EqualValues(t, 2, n)
}

// The issue: there was no way to revoke a key, and a key whose row was
// deleted went on working for 31 s on each coordinator that had it cached.
// Injected: two coordinators holding an app's key in their caches (for a
// day), then "chime app key revoke" by prefix. Checked: the command prints
// the revocation, and both coordinators refuse the key within one second
// (the bound the issue sets; the announcement takes milliseconds), while
// the app's other key still works. Then a revocation by ID with -grace
// leaves the other key working until the printed expiry.
func TestKeyRevokeReachesEveryCoordinator(t *testing.T) {
	b := setup(t)
	c1, c2 := b.coordinator(), b.coordinator()
	old := key(t, b.mustChime("app", "create", "shop"))
	fresh := key(t, b.mustChime("app", "key", "create", "shop"))
	for _, c := range []func(string) int{c1, c2} {
		require.Equal(t, http.StatusOK, c(old))
		require.Equal(t, http.StatusOK, c(fresh))
	}

	revoked := b.mustChime("app", "key", "revoke", "shop", old[:store.KeyPrefixLen])
	require.Regexp(t, `^key \d+ \(`+old[:store.KeyPrefixLen]+`\) of app \d+ "shop" revoked at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n$`, revoked)
	testenv.WaitUntil(t, time.Second, "both coordinators to refuse the revoked key", func() bool {
		return c1(old) == http.StatusUnauthorized && c2(old) == http.StatusUnauthorized
	})
	require.Equal(t, http.StatusOK, c1(fresh))
	require.Equal(t, http.StatusOK, c2(fresh))
	keys := rows(t, b.mustChime("app", "key", "list", "shop"), "ID PREFIX STATE CREATED LAST USED EXPIRES REVOKED NAME")
	require.Equal(t, "revoked", keys[0][2])
	require.NotEqual(t, "-", keys[0][6])

	out := b.mustChime("app", "key", "revoke", "shop", keys[1][0], "-grace", "1h")
	require.Regexp(t, `of app \d+ "shop" expires at `, out)
	require.Equal(t, http.StatusOK, c1(fresh))
	require.Equal(t, http.StatusOK, c2(fresh))
	keys = rows(t, b.mustChime("app", "key", "list", "shop"), "ID PREFIX STATE CREATED LAST USED EXPIRES REVOKED NAME")
	require.Equal(t, "active", keys[1][2])
	require.NotEqual(t, "-", keys[1][5])

	// The whole key names it too, and revoking again changes nothing.
	require.Equal(t, revoked, b.mustChime("app", "key", "revoke", "shop", old))
}

// Injected: each kind of mistake. Checked: a one-line error saying what is
// wrong, and no app or key row changed.
func TestAppCommandErrors(t *testing.T) {
	b := setup(t)
	first := key(t, b.mustChime("app", "create", "dup"))
	b.mustChime("app", "create", "dup")
	other := key(t, b.mustChime("app", "create", "other"))
	var before int64
	require.NoError(t, b.env.DB.Model(&store.APIKey{}).Count(&before).Error)

	for _, tc := range []struct {
		args    []string
		mention []string
	}{
		{[]string{"app", "key", "list", "dup"}, []string{`more than one app is named "dup"`, "ID"}},
		{[]string{"app", "key", "list", "nobody"}, []string{`no app is named "nobody"`}},
		{[]string{"app", "key", "list", "999999"}, []string{"no app has ID 999999"}},
		{[]string{"app", "key", "create", "other", "-name", strings.Repeat("n", 101)}, []string{"-name", "100 characters"}},
		{[]string{"app", "key", "create", "other", "extra"}, []string{"usage: chime app key create APP"}},
		{[]string{"app", "key", "create", "other", "-label", "x"}, []string{"-label"}},
		{[]string{"app", "key", "revoke", "other", "nonsense"}, []string{`"nonsense" is not a key ID`}},
		{[]string{"app", "key", "revoke", "other", "chk_00000000"}, []string{`has no key chk_00000000`}},
		{[]string{"app", "key", "revoke", "other", first}, []string{"has no key", first[:store.KeyPrefixLen] + "…"}},
		{[]string{"app", "key", "revoke", "other", "1", "-grace", "721h"}, []string{"-grace must be from 0s to 720h"}},
		{[]string{"app", "key", "revoke", "other", "1", "-grace", "soon"}, []string{"-grace"}},
		{[]string{"app", "create", ""}, []string{"must not be empty"}},
		{[]string{"app", "create", "a\tb"}, []string{"control characters"}},
	} {
		_, err := b.chime(tc.args...)
		requireOneLine(t, err, tc.mention...)
		require.NotContains(t, err.Error(), first)
	}

	// Revoke needs Redis: it is how the coordinators hear of it.
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"app", "key", "revoke", "other", other[:store.KeyPrefixLen]}, []string{"MYSQL_DSN=" + b.env.DSN}, &out, &errOut)
	requireOneLine(t, err, "REDIS_URL and MYSQL_DSN are required to revoke a key")

	var after int64
	require.NoError(t, b.env.DB.Model(&store.APIKey{}).Count(&after).Error)
	require.Equal(t, before, after)
	var revoked int64
	require.NoError(t, b.env.DB.Model(&store.APIKey{}).Where("revoked_at IS NOT NULL OR expires_at IS NOT NULL").Count(&revoked).Error)
	require.Zero(t, revoked)
}
