package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/keyspace"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/metrics"
	"github.com/chime-dev/chime/policy"
	"github.com/chime-dev/chime/store"
)

// Injects: app A puts a user's preferences twice (the second replaces the
// first), after the user's shard was built in Redis; app B reads and
// writes the same user ID. Checks: GET answers what PUT stored, normalised
// (sorted, each once); MySQL and the Redis mirror both hold it; app B sees
// empty preferences and its write leaves app A's untouched.
func TestPreferencesPutGet(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	var empty policy.Preferences
	requireJSON(t, b.as("GET", "/v1/users/u-1/preferences", nil), http.StatusOK, &empty)
	require.Equal(t, policy.Preferences{Reminders: []string{}, Categories: []string{}, Channels: []string{}}, empty)

	// The shard is built (as a worker's first chunk leaves it), so the
	// write reaches Redis at once.
	hash := keyspace.UserShardKey(b.env.Prefix, b.appA.ID, policy.Shard(b.appA.ID, "u-1")) + "prefs"
	require.NoError(t, b.env.Redis.HSet(ctx, hash, " built", "1").Err())

	in := map[string]any{"reminders": []string{"water", "digest", "water"}, "categories": []string{"marketing"},
		"channels": []string{"push"}, "quiet_hours": map[string]string{"start": "22:00", "end": "07:00"}}
	var got policy.Preferences
	requireJSON(t, b.as("PUT", "/v1/users/u-1/preferences", in), http.StatusOK, &got)
	want := policy.Preferences{Reminders: []string{"digest", "water"}, Categories: []string{"marketing"}, Channels: []string{"push"},
		QuietHours: &policy.Hours{Start: "22:00", End: "07:00"}}
	require.Equal(t, want, got)
	requireJSON(t, b.as("GET", "/v1/users/u-1/preferences", nil), http.StatusOK, &got)
	require.Equal(t, want, got)
	mirrored, err := b.env.Redis.HGet(ctx, hash, "u-1").Result()
	require.NoError(t, err)
	require.JSONEq(t, `{"r":["digest","water"],"c":["marketing"],"ch":["push"],"q":[1320,420]}`, mirrored)

	requireJSON(t, b.as("PUT", "/v1/users/u-1/preferences", map[string]any{"categories": []string{"news"}}), http.StatusOK, &got)
	require.Equal(t, []string{"news"}, got.Categories)
	require.Empty(t, got.Reminders)
	require.Nil(t, got.QuietHours)

	// Another app's user of the same ID is another user.
	requireJSON(t, b.req("GET", "/v1/users/u-1/preferences", b.keyB, nil), http.StatusOK, &got)
	require.Equal(t, empty, got)
	requireJSON(t, b.req("PUT", "/v1/users/u-1/preferences", b.keyB, map[string]any{"reminders": []string{"x"}}), http.StatusOK, nil)
	requireJSON(t, b.as("GET", "/v1/users/u-1/preferences", nil), http.StatusOK, &got)
	require.Equal(t, []string{"news"}, got.Categories)
	require.Empty(t, got.Reminders)
	require.Equal(t, int64(2), b.count(&store.UserPreference{}))
}

// Injects: invalid preferences, one field at a time, for a user with
// stored preferences. Checks: 422 naming the field, and nothing changes.
func TestPreferencesBadInput(t *testing.T) {
	b := setup(t)
	requireJSON(t, b.as("PUT", "/v1/users/u-1/preferences", map[string]any{"categories": []string{"news"}}), http.StatusOK, nil)
	before := b.as("GET", "/v1/users/u-1/preferences", nil).Body
	many := make([]string, policy.MaxOptOuts+1)
	for i := range many {
		many[i] = "k" + strings.Repeat("x", i%50)
	}
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"reminders": []string{"bad key!"}}, "reminders[0]"},
		{map[string]any{"reminders": many}, "reminders"},
		{map[string]any{"categories": []string{"Marketing"}}, "categories[0]"},
		{map[string]any{"channels": []string{"sms"}}, "channels[0]"},
		{map[string]any{"quiet_hours": map[string]string{"start": "25:00", "end": "07:00"}}, "quiet_hours.start"},
		{map[string]any{"quiet_hours": map[string]string{"start": "22:00"}}, "quiet_hours.end"},
		{map[string]any{"quiet_hours": map[string]string{"start": "07:00", "end": "07:00"}}, "quiet_hours.end"},
	} {
		requireProblem(t, b.as("PUT", "/v1/users/u-1/preferences", tc.body), http.StatusUnprocessableEntity, tc.field)
	}
	requireProblem(t, b.as("PUT", "/v1/users/"+strings.Repeat("u", 192)+"/preferences", map[string]any{}), http.StatusUnprocessableEntity, "user_id")
	require.Equal(t, before, b.as("GET", "/v1/users/u-1/preferences", nil).Body)
}

// Injects: the app's delivery settings put, then invalid ones; another
// app's key reads them. Checks: GET answers what PUT stored (windows in
// canonical form); each invalid field is a 422 naming it and changes
// nothing; the other app has none; the change is audited.
func TestDeliverySettings(t *testing.T) {
	b := setup(t)
	in := map[string]any{"quiet_hours": map[string]string{"start": "22:00", "end": "07:00"},
		"frequency_caps": map[string]any{"marketing": map[string]any{"max": 3, "window": "24h"}}}
	var got policy.Settings
	requireJSON(t, b.as("PUT", "/v1/settings/delivery", in), http.StatusOK, &got)
	want := policy.Settings{QuietHours: &policy.Hours{Start: "22:00", End: "07:00"}, FrequencyCaps: map[string]policy.Cap{"marketing": {Max: 3, Window: "24h0m0s"}}}
	require.Equal(t, want, got)
	before := b.as("GET", "/v1/settings/delivery", nil).Body
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"frequency_caps": map[string]any{"marketing": map[string]any{"max": 0, "window": "24h"}}}, "frequency_caps.marketing.max"},
		{map[string]any{"frequency_caps": map[string]any{"marketing": map[string]any{"max": 3, "window": "31d"}}}, "frequency_caps.marketing.window"},
		{map[string]any{"frequency_caps": map[string]any{"marketing": map[string]any{"max": 3, "window": "1000h"}}}, "frequency_caps.marketing.window"},
		{map[string]any{"frequency_caps": map[string]any{"Bad Cat": map[string]any{"max": 3, "window": "1h"}}}, "frequency_caps"},
		{map[string]any{"quiet_hours": map[string]string{"start": "x", "end": "07:00"}}, "quiet_hours.start"},
	} {
		requireProblem(t, b.as("PUT", "/v1/settings/delivery", tc.body), http.StatusUnprocessableEntity, tc.field)
	}
	require.Equal(t, before, b.as("GET", "/v1/settings/delivery", nil).Body)
	var other policy.Settings
	requireJSON(t, b.req("GET", "/v1/settings/delivery", b.keyB, nil), http.StatusOK, &other)
	require.Nil(t, other.QuietHours)
	require.Empty(t, other.FrequencyCaps)
	require.Equal(t, int64(1), b.count(&store.AuditEntry{}, "resource LIKE ?", "%settings/delivery%"))
}

// Injects: reminders with a category, critical and quiet mode, and bad
// values of each. Checks: they are stored and answered; a bad category or
// quiet mode is a 422 naming the field.
func TestReminderPolicyFields(t *testing.T) {
	b := setup(t)
	base := map[string]any{"title": "Sale", "times": []map[string]string{{"location": "paris", "zone": "Europe/Paris", "local_time": "09:00"}}}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	r := b.putReminder("sale", with("category", "marketing", "quiet", "drop"))
	require.Equal(t, "marketing", r.Category)
	require.Equal(t, "drop", r.Quiet)
	require.False(t, r.Critical)
	stored := b.storedReminder("sale")
	require.Equal(t, store.QuietModeDrop, stored.Quiet)
	r = b.putReminder("alarm", with("critical", true))
	require.True(t, r.Critical)
	require.Equal(t, "hold", r.Quiet)
	require.Equal(t, "", b.storedReminder("alarm").Quiet)
	requireProblem(t, b.as("PUT", "/v1/reminders/x", with("category", "Not A Slug")), http.StatusUnprocessableEntity, "category")
	requireProblem(t, b.as("PUT", "/v1/reminders/x", with("quiet", "later")), http.StatusUnprocessableEntity, "quiet")
}

// Injects: chunks of app A decided while it has no preferences (found so
// in Redis, the decision script skipped), then an opt-out written through
// PUT /v1/users/{user_id}/preferences. Checks: the first chunk sends to
// everyone without the script; the chunk decided after the PUT returned
// leaves the opted-out user out.
func TestPreferencesPutSeenByNextChunk(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	pol := policy.New(policy.Config{Prefix: b.env.Prefix}, b.env.Redis, b.env.DB)
	users := []string{"u-1", "u-2", "u-3"}
	m := message.Message{App: b.appA.ID, Occurrence: 1, Reminder: "news", Zone: "UTC", Policy: &message.Policy{Category: "marketing"}}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	skipped := metrics.PolicySkippedChunks()
	d, err := pol.Decide(ctx, m, users, now)
	require.NoError(t, err)
	require.Equal(t, users, d.Send)
	require.Equal(t, 1.0, metrics.PolicySkippedChunks()-skipped)

	requireJSON(t, b.as("PUT", "/v1/users/u-2/preferences", map[string]any{"categories": []string{"marketing"}}), http.StatusOK, nil)
	m.Occurrence = 2
	d, err = pol.Decide(ctx, m, users, now)
	require.NoError(t, err)
	require.Equal(t, []string{"u-1", "u-3"}, d.Send)
	require.Equal(t, []string{"u-2"}, d.Outcomes[policy.SkippedPreference])
}
