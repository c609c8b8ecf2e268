package api_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/store"
)

func TestAuthRequiresAValidKey(t *testing.T) {
	b := setup(t)
	b.putReminder("standup", reminder("Stand-up", at("paris", "Europe/Paris", "09:00")))

	for _, tc := range []struct {
		name, auth, mention string
	}{
		{"no header", "", "Authorization: Bearer"},
		{"not bearer", "Basic " + b.keyA, "Authorization: Bearer"},
		{"empty bearer", "Bearer ", "Authorization: Bearer"},
		{"wrong key", "Bearer chk_0123456789abcdef", "not valid"},
		{"key with a character off", "Bearer " + b.keyA[:len(b.keyA)-1] + "x", "not valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/v1/reminders", "/v1/reminders/standup"} {
				hdr := []string{}
				if tc.auth != "" {
					hdr = []string{"Authorization", tc.auth}
				}
				r := b.req(http.MethodGet, path, "", nil, hdr...)
				requireProblem(t, r, http.StatusUnauthorized, tc.mention)
				require.Contains(t, r.Header.Get("WWW-Authenticate"), "Bearer")
			}
			// A write without a valid key changes nothing.
			hdr := []string{}
			if tc.auth != "" {
				hdr = []string{"Authorization", tc.auth}
			}
			r := b.req(http.MethodDelete, "/v1/reminders/standup", "", nil, hdr...)
			requireProblem(t, r, http.StatusUnauthorized)
			requireJSON(t, b.as(http.MethodGet, "/v1/reminders/standup", nil), http.StatusOK, nil)
		})
	}
}

func TestAnotherAppsKeySeesNothing(t *testing.T) {
	b := setup(t)
	b.putReminder("standup", reminder("Stand-up", at("paris", "Europe/Paris", "09:00")))
	b.subscribe("standup", []sub{{"u1", "paris"}})
	before := b.counts()

	for _, tc := range []struct {
		name, method, path string
		body               any
	}{
		{"get reminder", http.MethodGet, "/v1/reminders/standup", nil},
		{"put subscriber", http.MethodPut, "/v1/reminders/standup/subscribers/u2", map[string]string{"location": "paris"}},
		{"bulk subscribers", http.MethodPost, "/v1/reminders/standup/subscribers", map[string]any{"subscribers": []sub{{"u3", "paris"}}}},
		{"delete subscriber", http.MethodDelete, "/v1/reminders/standup/subscribers/u1", nil},
		{"delete reminder", http.MethodDelete, "/v1/reminders/standup", nil},
		{"occurrences", http.MethodGet, "/v1/occurrences?reminder=standup", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.req(tc.method, tc.path, b.keyB, tc.body)
			requireProblem(t, r, http.StatusNotFound, `"standup"`)
		})
	}
	require.Equal(t, before, b.counts())

	var list struct {
		Reminders []api.Reminder `json:"reminders"`
	}
	requireJSON(t, b.req(http.MethodGet, "/v1/reminders", b.keyB, nil), http.StatusOK, &list)
	require.Empty(t, list.Reminders)

	// App A still has its reminder and subscriber.
	var got api.Reminder
	requireJSON(t, b.as(http.MethodGet, "/v1/reminders/standup", nil), http.StatusOK, &got)
	require.Equal(t, "Stand-up", got.Title)
	require.Equal(t, int64(1), b.count(&store.Subscription{}, "user_id = ?", "u1"))

	// The same key in app B is a reminder of its own.
	r := b.req(http.MethodPut, "/v1/reminders/standup", b.keyB, reminder("B's", at("tokyo", "Asia/Tokyo", "10:00")))
	requireJSON(t, r, http.StatusCreated, &got)
	requireJSON(t, b.as(http.MethodGet, "/v1/reminders/standup", nil), http.StatusOK, &got)
	require.Equal(t, "Stand-up", got.Title)
	require.Equal(t, []api.ReminderTime{at("paris", "Europe/Paris", "09:00:00")}, got.Times)
}

func TestReminderLifecycle(t *testing.T) {
	b := setup(t)
	start := time.Now().UTC().Add(-time.Second)

	// Create: 201, times normalised to HH:MM:SS and ordered by location.
	r := b.as(http.MethodPut, "/v1/reminders/water.v1", reminder("Drink water",
		at("paris", "Europe/Paris", "07:30"),
		at("new-york", "America/New_York", "18:00:15"),
		at("paris", "Europe/Paris", "12:00"),
	))
	var created api.Reminder
	requireJSON(t, r, http.StatusCreated, &created)
	require.Equal(t, "water.v1", created.Key)
	require.Equal(t, "Drink water", created.Title)
	require.Equal(t, []api.ReminderTime{
		at("new-york", "America/New_York", "18:00:15"),
		at("paris", "Europe/Paris", "07:30:00"),
		at("paris", "Europe/Paris", "12:00:00"),
	}, created.Times)
	// Defaults.
	require.Zero(t, created.Groups, "sized per location")
	require.Equal(t, "15m0s", created.ValidFor)
	require.Nil(t, created.StartsAt)
	require.Nil(t, created.EndsAt)
	require.False(t, created.CreatedAt.Before(start.Truncate(time.Second)), "created_at %v", created.CreatedAt)

	rem := b.storedReminder("water.v1")
	require.Zero(t, rem.Groups)
	require.Equal(t, int64(900), rem.ValidForS)
	require.Equal(t, int64(3), b.count(&store.ReminderTime{}, "reminder_id = ?", rem.ID))
	require.Equal(t, int64(2), b.count(&store.Location{}))

	// GET returns what PUT returned.
	var got api.Reminder
	requireJSON(t, b.as(http.MethodGet, "/v1/reminders/water.v1", nil), http.StatusOK, &got)
	require.Equal(t, created, got)

	// Replace: 200, everything replaced, the time that stays keeps its row.
	var kept store.ReminderTime
	require.NoError(t, b.env.DB.Where("reminder_id = ? AND local_sec = ?", rem.ID, 12*3600).First(&kept).Error)
	startsAt := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	endsAt := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	r = b.as(http.MethodPut, "/v1/reminders/water.v1", map[string]any{
		"title": "Drink more water", "body": "Two glasses", "groups": 8, "valid_for": "1h30m",
		"starts_at": startsAt, "ends_at": endsAt,
		"times": []api.ReminderTime{at("paris", "Europe/Paris", "12:00:00"), at("tokyo", "Asia/Tokyo", "08:00")},
	})
	var replaced api.Reminder
	requireJSON(t, r, http.StatusOK, &replaced)
	require.Equal(t, "Drink more water", replaced.Title)
	require.Equal(t, "Two glasses", replaced.Body)
	require.Equal(t, 8, replaced.Groups)
	require.Equal(t, "1h30m0s", replaced.ValidFor)
	require.NotNil(t, replaced.StartsAt)
	require.True(t, startsAt.Equal(*replaced.StartsAt))
	require.NotNil(t, replaced.EndsAt)
	require.True(t, endsAt.Equal(*replaced.EndsAt))
	require.Equal(t, []api.ReminderTime{at("paris", "Europe/Paris", "12:00:00"), at("tokyo", "Asia/Tokyo", "08:00:00")}, replaced.Times)
	require.True(t, created.CreatedAt.Equal(replaced.CreatedAt))
	require.Equal(t, int64(1), b.count(&store.Reminder{}))
	require.Equal(t, int64(2), b.count(&store.ReminderTime{}, "reminder_id = ?", rem.ID))
	var still store.ReminderTime
	require.NoError(t, b.env.DB.Where("reminder_id = ? AND local_sec = ?", rem.ID, 12*3600).First(&still).Error)
	require.Equal(t, kept.ID, still.ID)

	requireJSON(t, b.as(http.MethodGet, "/v1/reminders/water.v1", nil), http.StatusOK, &got)
	require.Equal(t, replaced, got)

	// Delete: 204, then 404 everywhere, and its rows are gone.
	b.subscribe("water.v1", []sub{{"u1", "paris"}, {"u2", "tokyo"}})
	require.NoError(t, b.env.DB.Create(&store.Occurrence{ReminderID: rem.ID, LocationID: b.loc("water.v1", "paris").Location,
		FireAt: startsAt, ExpiresAt: startsAt.Add(time.Hour), State: store.OccScheduled, GroupsTotal: 8}).Error)
	r = b.as(http.MethodDelete, "/v1/reminders/water.v1", nil)
	require.Equal(t, http.StatusNoContent, r.Status, "body: %s", r.Body)
	require.Empty(t, r.Body)
	requireProblem(t, b.as(http.MethodGet, "/v1/reminders/water.v1", nil), http.StatusNotFound, `"water.v1"`)
	requireProblem(t, b.as(http.MethodDelete, "/v1/reminders/water.v1", nil), http.StatusNotFound, `"water.v1"`)
	for table, n := range b.counts() {
		if table != "locations" { // locations are shared by an app's reminders and stay
			require.Zero(t, n, table)
		}
	}

	// The key can be used again: a new reminder, 201.
	r = b.as(http.MethodPut, "/v1/reminders/water.v1", reminder("Again", at("paris", "Europe/Paris", "07:00")))
	requireJSON(t, r, http.StatusCreated, &got)
	require.Zero(t, got.Groups)
}

func TestListRemindersPaginates(t *testing.T) {
	b := setup(t)
	keys := []string{"e", "a", "d", "b", "c"}
	for _, k := range keys {
		b.putReminder(k, reminder("Reminder "+k, at("paris", "Europe/Paris", "09:00")))
	}
	requireJSON(t, b.req(http.MethodPut, "/v1/reminders/zz-other-app", b.keyB, reminder("B", at("x", "UTC", "09:00"))), http.StatusCreated, nil)

	type page struct {
		Reminders []api.Reminder `json:"reminders"`
		Next      string         `json:"next"`
	}
	list := func(query string) ([]string, string) {
		t.Helper()
		var p page
		requireJSON(t, b.as(http.MethodGet, "/v1/reminders"+query, nil), http.StatusOK, &p)
		var got []string
		for _, r := range p.Reminders {
			require.Equal(t, "Reminder "+r.Key, r.Title)
			require.Equal(t, []api.ReminderTime{at("paris", "Europe/Paris", "09:00:00")}, r.Times)
			got = append(got, r.Key)
		}
		return got, p.Next
	}

	got, next := list("")
	require.Equal(t, []string{"a", "b", "c", "d", "e"}, got)
	require.Empty(t, next)

	// Walk the pages with limit=2.
	var all []string
	query := "?limit=2"
	for pages := 0; ; pages++ {
		require.Less(t, pages, 5, "pagination does not end")
		got, next := list(query)
		require.LessOrEqual(t, len(got), 2)
		all = append(all, got...)
		if next == "" {
			break
		}
		require.Equal(t, got[len(got)-1], next)
		query = "?limit=2&after=" + url.QueryEscape(next)
	}
	require.Equal(t, []string{"a", "b", "c", "d", "e"}, all)

	got, next = list("?limit=2&after=b")
	require.Equal(t, []string{"c", "d"}, got)
	require.Equal(t, "d", next)
	got, _ = list("?after=e")
	require.Empty(t, got)

	for _, bad := range []string{"0", "1001", "-1", "two"} {
		requireProblem(t, b.as(http.MethodGet, "/v1/reminders?limit="+bad, nil), http.StatusBadRequest, "limit")
	}
}

func TestPutReminderRejectsBadInput(t *testing.T) {
	b := setup(t)
	// An existing reminder with location paris in Europe/Paris.
	existing := b.putReminder("existing", reminder("Existing", at("paris", "Europe/Paris", "09:00")))

	paris := at("paris", "Europe/Paris", "09:00")
	oneGroup := func(n int) map[string]any {
		m := reminder("T", at("x", "UTC", "09:00"))
		m["groups"] = n
		return m
	}
	validFor := func(s string) map[string]any {
		m := reminder("T", at("x", "UTC", "09:00"))
		m["valid_for"] = s
		return m
	}
	spread := func(s string) map[string]any {
		m := reminder("T", at("x", "UTC", "09:00"))
		m["spread"] = s
		return m
	}
	for _, tc := range []struct {
		name    string
		key     string // "new" unless set
		body    any
		ctype   string
		status  int
		mention []string
	}{
		{name: "unknown zone", body: reminder("T", at("mars", "Mars/Olympus", "09:00")),
			status: 422, mention: []string{"times[0].zone", "Mars/Olympus"}},
		{name: "Local zone", body: reminder("T", at("here", "Local", "09:00")),
			status: 422, mention: []string{"times[0].zone"}},
		{name: "hour 25", body: reminder("T", at("x", "UTC", "25:00")),
			status: 422, mention: []string{"times[0].local_time", "HH:MM"}},
		{name: "one-digit hour", body: reminder("T", paris, at("x", "UTC", "7:30")),
			status: 422, mention: []string{"times[1].local_time", "HH:MM"}},
		{name: "missing title", body: map[string]any{"times": []api.ReminderTime{paris}},
			status: 422, mention: []string{"title: is required"}},
		{name: "title too long", body: reminder(repeat("é", 201), paris),
			status: 422, mention: []string{"title: must be at most 200"}},
		{name: "missing times", body: map[string]any{"title": "T"},
			status: 422, mention: []string{"times: at least one"}},
		{name: "empty times", body: reminder("T"),
			status: 422, mention: []string{"times: at least one"}},
		{name: "bad location name", body: reminder("T", at("", "UTC", "09:00")),
			status: 422, mention: []string{"times[0].location"}},
		{name: "groups 0", body: oneGroup(0), status: 422, mention: []string{"groups", "65536"}},
		{name: "groups 70000", body: oneGroup(70000), status: 422, mention: []string{"groups", "65536"}},
		{name: "groups not a number", body: rawBody(`{"title":"T","groups":"8","times":[{"location":"x","zone":"UTC","local_time":"09:00"}]}`),
			status: 400, mention: []string{`"groups"`}},
		{name: "valid_for not a duration", body: validFor("fifteen minutes"), status: 422, mention: []string{"valid_for", "duration"}},
		{name: "valid_for too short", body: validFor("500ms"), status: 422, mention: []string{"valid_for", "between"}},
		{name: "valid_for too long", body: validFor("169h"), status: 422, mention: []string{"valid_for", "between"}},
		{name: "spread not a duration", body: spread("soon"), status: 422, mention: []string{"spread", "duration"}},
		{name: "spread negative", body: spread("-1m"), status: 422, mention: []string{"spread", "between 0s and valid_for"}},
		{name: "spread with a fraction of a second", body: spread("1.5s"), status: 422, mention: []string{"spread", "whole-second"}},
		{name: "spread longer than valid_for", body: spread("16m"), status: 422, mention: []string{"spread", "valid_for (15m0s)"}},
		{name: "spread longer than the maximum", body: func() map[string]any { m := spread("25h"); m["valid_for"] = "48h"; return m }(),
			status: 422, mention: []string{"spread", "at most 24h0m0s"}},
		{name: "ends before starts", body: map[string]any{"title": "T", "times": []api.ReminderTime{paris},
			"starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"}, status: 422, mention: []string{"ends_at"}},
		{name: "several errors at once", body: map[string]any{"groups": 0, "times": []api.ReminderTime{at("x", "Mars/Olympus", "09:00")}},
			status: 422, mention: []string{"title", "groups", "times[0].zone"}},
		{name: "bad JSON syntax", body: rawBody(`{"title": "T",}`), status: 400, mention: []string{"not valid JSON"}},
		{name: "truncated JSON", body: rawBody(`{"title": "T"`), status: 400, mention: []string{"not valid JSON"}},
		{name: "empty body", body: rawBody(``), status: 400, mention: []string{"empty"}},
		{name: "unknown field", body: rawBody(`{"title":"T","colour":"red","times":[{"location":"x","zone":"UTC","local_time":"09:00"}]}`),
			status: 400, mention: []string{"colour"}},
		{name: "unknown field in a time", body: rawBody(`{"title":"T","times":[{"location":"x","zone":"UTC","local_time":"09:00","tz":"UTC"}]}`),
			status: 400, mention: []string{"tz"}},
		{name: "trailing document", body: rawBody(`{"title":"T","times":[{"location":"x","zone":"UTC","local_time":"09:00"}]} {}`),
			status: 400, mention: []string{"data after the JSON document"}},
		{name: "trailing garbage", body: rawBody(`{"title":"T","times":[{"location":"x","zone":"UTC","local_time":"09:00"}]}]`),
			status: 400, mention: []string{"data after the JSON document"}},
		{name: "body over 1 MiB", body: rawBody(`{"title":"T","times":[{"location":"x","zone":"UTC","local_time":"09:00"}],"body":"` + repeat("a", 1<<20) + `"}`),
			status: 413, mention: []string{"1048576"}},
		{name: "key with a space", key: "bad%20key", body: reminder("T", paris), status: 422, mention: []string{"reminder key"}},
		{name: "key starting with a dot", key: ".hidden", body: reminder("T", paris), status: 422, mention: []string{"reminder key"}},
		{name: "key too long", key: repeat("k", 101), body: reminder("T", paris), status: 422, mention: []string{"reminder key"}},
		{name: "one location two zones", body: reminder("T", at("x", "UTC", "09:00"), at("x", "Europe/Paris", "10:00")),
			status: 422, mention: []string{"times[1].zone", `"UTC"`, `"Europe/Paris"`}},
		{name: "location exists with another zone", body: reminder("T", at("tokyo", "Asia/Tokyo", "09:00"), at("paris", "Europe/Berlin", "09:00")),
			status: 409, mention: []string{`"paris"`, "Europe/Paris"}},
		{name: "replacing with an invalid reminder", key: "existing", body: reminder("", paris),
			status: 422, mention: []string{"title"}},
		{name: "replacing moves a location to another zone", key: "existing", body: reminder("Changed", at("paris", "America/New_York", "09:00")),
			status: 409, mention: []string{`"paris"`}},
		{name: "text/plain", body: reminder("T", paris), ctype: "text/plain", status: 415, mention: []string{"application/json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key
			if key == "" {
				key = "new"
			}
			before := b.counts()
			var hdr []string
			if tc.ctype != "" {
				hdr = []string{"Content-Type", tc.ctype}
			}
			r := b.as(http.MethodPut, "/v1/reminders/"+key, tc.body, hdr...)
			requireProblem(t, r, tc.status, tc.mention...)

			require.Equal(t, before, b.counts(), "rows changed")
			requireProblem(t, b.as(http.MethodGet, "/v1/reminders/new", nil), http.StatusNotFound)
			var got api.Reminder
			requireJSON(t, b.as(http.MethodGet, "/v1/reminders/existing", nil), http.StatusOK, &got)
			require.Equal(t, existing, got)
		})
	}
}

func TestPutReminderRequiresJSONContentType(t *testing.T) {
	b := setup(t)
	body := reminder("T", at("paris", "Europe/Paris", "09:00"))
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/xml", "multipart/form-data; boundary=x"} {
		t.Run(ct, func(t *testing.T) {
			r := b.as(http.MethodPut, "/v1/reminders/r", body, "Content-Type", ct)
			requireProblem(t, r, http.StatusUnsupportedMediaType, "application/json")
			require.Zero(t, b.count(&store.Reminder{}))
		})
	}
	// application/json with parameters is accepted.
	r := b.as(http.MethodPut, "/v1/reminders/r", body, "Content-Type", "application/json; charset=utf-8")
	requireJSON(t, r, http.StatusCreated, nil)
}

func TestSubscriberPutAndDelete(t *testing.T) {
	b := setup(t)
	rem := map[string]any{"title": "T", "groups": 16, "times": []api.ReminderTime{
		at("paris", "Europe/Paris", "09:00"), at("london", "Europe/London", "09:00")}}
	b.putReminder("standup", rem)
	// A location of another reminder of the app is not one of this reminder's.
	b.putReminder("other", reminder("O", at("tokyo", "Asia/Tokyo", "09:00")))
	paris := b.loc("standup", "paris")

	for _, user := range []string{"u1", "42", "alice@example.com", "ünïcode"} {
		r := b.as(http.MethodPut, "/v1/reminders/standup/subscribers/"+url.PathEscape(user), map[string]string{"location": "paris"})
		var s api.Subscriber
		requireJSON(t, r, http.StatusOK, &s)
		require.Equal(t, api.Subscriber{UserID: user, Location: "paris", Group: grouping.Bucket(user)}, s)

		var row store.Subscription
		require.NoError(t, b.env.DB.Where("reminder_id = ? AND user_id = ?", paris.Reminder, user).First(&row).Error)
		require.Equal(t, paris.Location, row.LocationID)
		require.Equal(t, grouping.Bucket(user), row.GroupNo)
	}
	// Putting the same subscriber again is idempotent.
	requireJSON(t, b.as(http.MethodPut, "/v1/reminders/standup/subscribers/u1", map[string]string{"location": "paris"}), http.StatusOK, nil)
	require.Equal(t, int64(4), b.count(&store.Subscription{}))

	for _, tc := range []struct {
		name, user string
		body       any
		status     int
		mention    []string
	}{
		{"unknown location", "u2", map[string]string{"location": "berlin"}, 422, []string{`"berlin"`, "location"}},
		{"location of another reminder", "u2", map[string]string{"location": "tokyo"}, 422, []string{`"tokyo"`}},
		{"no location", "u2", map[string]string{}, 422, []string{"location"}},
		{"user id with a space", "u%202", map[string]string{"location": "paris"}, 422, []string{"user_id"}},
		{"user id too long", repeat("u", 192), map[string]string{"location": "paris"}, 422, []string{"user_id", "191"}},
		{"unknown field", "u2", rawBody(`{"location":"paris","group":3}`), 400, []string{"group"}},
		{"unknown reminder", "u2", map[string]string{"location": "paris"}, 404, []string{"nope"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "standup"
			if tc.status == 404 {
				key = "nope"
			}
			r := b.as(http.MethodPut, "/v1/reminders/"+key+"/subscribers/"+tc.user, tc.body)
			requireProblem(t, r, tc.status, tc.mention...)
			require.Equal(t, int64(4), b.count(&store.Subscription{}))
			require.Zero(t, b.count(&store.Subscription{}, "user_id LIKE ?", "u_2"))
		})
	}

	// Delete: 204, the row and its index entry are gone; again: 404.
	require.Contains(t, b.indexed(paris, 16), "u1")
	r := b.as(http.MethodDelete, "/v1/reminders/standup/subscribers/u1", nil)
	require.Equal(t, http.StatusNoContent, r.Status, "body: %s", r.Body)
	require.Zero(t, b.count(&store.Subscription{}, "user_id = ?", "u1"))
	require.Equal(t, int64(3), b.count(&store.Subscription{}))
	require.NotContains(t, b.indexed(paris, 16), "u1")
	requireProblem(t, b.as(http.MethodDelete, "/v1/reminders/standup/subscribers/u1", nil), http.StatusNotFound, `"u1"`)
	requireProblem(t, b.as(http.MethodDelete, "/v1/reminders/nope/subscribers/42", nil), http.StatusNotFound, `"nope"`)
	require.Equal(t, int64(3), b.count(&store.Subscription{}))
}

func TestBulkSubscribe10000(t *testing.T) {
	b := setup(t)
	const groups = 64
	b.putReminder("big", map[string]any{"title": "T", "groups": groups, "times": []api.ReminderTime{
		at("paris", "Europe/Paris", "09:00"), at("london", "Europe/London", "09:00"), at("empty", "UTC", "09:00")}})

	subs := make([]sub, 10000)
	want := map[string]map[string]int{"paris": {}, "london": {}, "empty": {}}
	for i := range subs {
		s := sub{UserID: fmt.Sprintf("user-%05d", i), Location: "paris"}
		if i%3 == 0 {
			s.Location = "london"
		}
		subs[i] = s
		want[s.Location][s.UserID] = grouping.Of(s.UserID, groups)
	}
	b.subscribe("big", subs)

	rem := b.storedReminder("big")
	require.Equal(t, int64(10000), b.count(&store.Subscription{}, "reminder_id = ?", rem.ID))
	for name, users := range want {
		l := b.loc("big", name)
		require.Equal(t, int64(len(users)), b.count(&store.Subscription{}, "reminder_id = ? AND location_id = ?", l.Reminder, l.Location), name)
		requireMembers(t, users, b.indexed(l, groups), name)
	}
	var wrong int64
	require.NoError(t, b.env.DB.Model(&store.Subscription{}).Where("reminder_id = ?", rem.ID).Where("group_no < 0 OR group_no >= ?", grouping.MaxGroups).Count(&wrong).Error)
	require.Zero(t, wrong)

	// Registering the same users again, moved, is an update, not an insert.
	for i := range subs {
		subs[i].Location = "paris"
	}
	b.subscribe("big", subs)
	require.Equal(t, int64(10000), b.count(&store.Subscription{}))
	require.Equal(t, int64(10000), b.count(&store.Subscription{}, "location_id = ?", b.loc("big", "paris").Location))
	require.Empty(t, b.indexed(b.loc("big", "london"), groups))
	all := map[string]int{}
	for _, users := range want {
		maps.Copy(all, users)
	}
	requireMembers(t, all, b.indexed(b.loc("big", "paris"), groups), "paris after the move")
}

func TestBulkSubscribeLimits(t *testing.T) {
	b := setup(t)
	b.putReminder("r", reminder("T", at("paris", "Europe/Paris", "09:00"), at("london", "Europe/London", "09:00")))

	many := func(n int) []sub {
		s := make([]sub, n)
		for i := range s {
			s[i] = sub{UserID: fmt.Sprintf("u%d", i), Location: "paris"}
		}
		return s
	}
	withBad := many(500)
	withBad[250].Location = "berlin"
	badUsers := many(3)
	badUsers[1].UserID = "has space"
	badUsers[2].UserID = ""

	for _, tc := range []struct {
		name    string
		body    any
		status  int
		mention []string
	}{
		{"10,001 subscribers", map[string]any{"subscribers": many(10001)}, 413, []string{"at most 10000", "has more"}},
		{"one unknown location", map[string]any{"subscribers": withBad}, 422, []string{"subscribers[250].location", `"berlin"`, "none were stored"}},
		{"bad user ids", map[string]any{"subscribers": badUsers}, 422, []string{"subscribers[1].user_id", "subscribers[2].user_id: is required"}},
		{"no subscribers", map[string]any{"subscribers": []sub{}}, 422, []string{"at least one"}},
		{"missing subscribers", map[string]any{}, 422, []string{"at least one"}},
		{"unknown field", rawBody(`{"subscribers":[{"user_id":"u","location":"paris","group":1}]}`), 400, []string{"group"}},
		{"bad JSON", rawBody(`{"subscribers":[`), 400, []string{"not valid JSON"}},
		{"cut after an entry", rawBody(`{"subscribers":[{"user_id":"u","location":"paris"}`), 400, []string{"not valid JSON"}},
		{"empty body", rawBody(``), 400, []string{"empty"}},
		{"not an object", rawBody(`[]`), 400, []string{"JSON object"}},
		{"null subscribers", rawBody(`{"subscribers":null}`), 422, []string{"at least one"}},
		{"subscribers not an array", rawBody(`{"subscribers":{"user_id":"u"}}`), 400, []string{"JSON array"}},
		{"subscribers twice", rawBody(`{"subscribers":[{"user_id":"u","location":"paris"}],"subscribers":[]}`), 400, []string{"twice"}},
		{"user_id not a string", rawBody(`{"subscribers":[{"user_id":"u","location":"paris"},{"user_id":7}]}`), 400, []string{`"subscribers[1].user_id" must be a JSON string`}},
		{"entry not an object", rawBody(`{"subscribers":[5]}`), 400, []string{`"subscribers[0]"`}},
		{"data after the document", rawBody(`{"subscribers":[{"user_id":"u","location":"paris"}]} {}`), 400, []string{"data after"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			index := b.indexSnapshot()
			r := b.as(http.MethodPost, "/v1/reminders/r/subscribers", tc.body)
			requireProblem(t, r, tc.status, tc.mention...)
			require.Zero(t, b.count(&store.Subscription{}))
			require.Equal(t, index, b.indexSnapshot())
		})
	}

	// Many errors are cut to 20 and a summary.
	allBad := many(30)
	for i := range allBad {
		allBad[i].Location = "nowhere"
	}
	r := b.as(http.MethodPost, "/v1/reminders/r/subscribers", map[string]any{"subscribers": allBad})
	p := requireProblem(t, r, 422, "and 10 more errors")
	require.Len(t, p.Errors, 21)

	// Exactly the limit is accepted.
	b.subscribe("r", many(10000))
	require.Equal(t, int64(10000), b.count(&store.Subscription{}))
}

func TestBulkSubscribeBodyLimit(t *testing.T) {
	b := setupWith(t, api.Config{MaxBody: 1024})
	b.putReminder("r", reminder("T", at("paris", "Europe/Paris", "09:00")))

	small := []sub{{"u1", "paris"}, {"u2", "paris"}}
	big := make([]sub, 100) // about 3 KB of JSON
	for i := range big {
		big[i] = sub{UserID: fmt.Sprintf("user-%03d", i), Location: "paris"}
	}
	r := b.as(http.MethodPost, "/v1/reminders/r/subscribers", map[string]any{"subscribers": big})
	requireProblem(t, r, http.StatusRequestEntityTooLarge, "1024")
	require.Zero(t, b.count(&store.Subscription{}))

	// The bulk limit is MaxBody, not the reminder limit: a small body fits.
	b.subscribe("r", small)
	require.Equal(t, int64(2), b.count(&store.Subscription{}))
}

func TestMovingASubscriberUpdatesTheIndex(t *testing.T) {
	b := setup(t)
	const groups = 8
	b.putReminder("r", map[string]any{"title": "T", "groups": groups, "times": []api.ReminderTime{
		at("paris", "Europe/Paris", "09:00"), at("london", "Europe/London", "09:00")}})
	paris, london := b.loc("r", "paris"), b.loc("r", "london")
	g := grouping.Of("u1", groups)

	requireJSON(t, b.as(http.MethodPut, "/v1/reminders/r/subscribers/u1", map[string]string{"location": "paris"}), http.StatusOK, nil)
	requireJSON(t, b.as(http.MethodPut, "/v1/reminders/r/subscribers/u2", map[string]string{"location": "paris"}), http.StatusOK, nil)
	// Build both indexes now, so what follows is kept up to date by the API's
	// updates, not by a rebuild.
	require.Equal(t, map[string]int{"u1": g, "u2": grouping.Of("u2", groups)}, b.indexed(paris, groups))
	require.Empty(t, b.indexed(london, groups))

	var s api.Subscriber
	requireJSON(t, b.as(http.MethodPut, "/v1/reminders/r/subscribers/u1", map[string]string{"location": "london"}), http.StatusOK, &s)
	require.Equal(t, api.Subscriber{UserID: "u1", Location: "london", Group: grouping.Bucket("u1")}, s)

	ctx := context.Background()
	inParis, err := b.index.Members(ctx, paris, groups, g)
	require.NoError(t, err)
	require.NotContains(t, inParis, "u1")
	inLondon, err := b.index.Members(ctx, london, groups, g)
	require.NoError(t, err)
	require.Equal(t, []string{"u1"}, inLondon)
	require.Equal(t, map[string]int{"u2": grouping.Of("u2", groups)}, b.indexed(paris, groups))

	var row store.Subscription
	require.NoError(t, b.env.DB.Where("user_id = ?", "u1").First(&row).Error)
	require.Equal(t, london.Location, row.LocationID)
	require.Equal(t, int64(2), b.count(&store.Subscription{}))

	// The bulk endpoint moves users the same way.
	b.subscribe("r", []sub{{"u2", "london"}})
	inParis, err = b.index.Members(ctx, paris, groups, grouping.Of("u2", groups))
	require.NoError(t, err)
	require.NotContains(t, inParis, "u2")
	require.Equal(t, map[string]int{"u1": g, "u2": grouping.Of("u2", groups)}, b.indexed(london, groups))
}

// groups on a reminder fixes its group count (rounded up to a power of
// two); without it each location is sized from its audience. Checked: a
// change of groups, even while an occurrence is being delivered, is
// accepted and moves no subscription in MySQL (each keeps its bucket); the
// index follows when the firer next fits the location.
func TestGroupsIsAnOverride(t *testing.T) {
	b := setup(t)
	put := func(groups any, status, want int) {
		t.Helper()
		body := map[string]any{"title": "T", "times": []api.ReminderTime{at("paris", "Europe/Paris", "09:00")}}
		if groups != nil {
			body["groups"] = groups
		}
		var out api.Reminder
		requireJSON(t, b.as(http.MethodPut, "/v1/reminders/r", body), status, &out)
		require.Equal(t, want, out.Groups)
		require.Equal(t, want, b.storedReminder("r").Groups)
	}
	put(nil, http.StatusCreated, 0)
	subs := make([]sub, 1000)
	for i := range subs {
		subs[i] = sub{UserID: fmt.Sprintf("user-%d", i), Location: "paris"}
	}
	b.subscribe("r", subs)
	paris := b.loc("r", "paris")
	rem := b.storedReminder("r")
	o := store.Occurrence{ReminderID: rem.ID, LocationID: paris.Location, FireAt: time.Now().UTC(),
		ExpiresAt: time.Now().UTC().Add(time.Minute), State: store.OccFiring}
	require.NoError(t, b.env.DB.Create(&o).Error)

	put(7, http.StatusOK, 8)
	var rows []store.Subscription
	require.NoError(t, b.env.DB.Where("reminder_id = ?", rem.ID).Find(&rows).Error)
	require.Len(t, rows, len(subs))
	for _, row := range rows {
		require.Equal(t, grouping.Bucket(row.UserID), row.GroupNo, row.UserID)
	}
	want := map[string]int{}
	for _, s := range subs {
		want[s.UserID] = grouping.Of(s.UserID, 8)
	}
	_, err := b.index.Fit(context.Background(), paris, 8, true)
	require.NoError(t, err)
	requireMembers(t, want, b.indexed(paris, 8), "paris at 8 groups")
	put(nil, http.StatusOK, 0)
}

func TestOccurrences(t *testing.T) {
	b := setup(t)
	b.putReminder("r", map[string]any{"title": "T", "groups": 4, "times": []api.ReminderTime{
		at("paris", "Europe/Paris", "09:00"), at("new-york", "America/New_York", "09:00")}})
	b.putReminder("other", reminder("O", at("paris", "Europe/Paris", "10:00")))
	paris, ny := b.loc("r", "paris"), b.loc("r", "new-york")

	// No occurrences yet: an empty list, not null.
	r := b.as(http.MethodGet, "/v1/occurrences?reminder=r", nil)
	requireJSON(t, r, http.StatusOK, nil)
	require.JSONEq(t, `{"occurrences":[]}`, string(r.Body))

	day := time.Date(2030, 3, 4, 0, 0, 0, 0, time.UTC)
	fired := day.Add(8*time.Hour + 123*time.Millisecond)
	done := fired.Add(time.Minute)
	rows := []store.Occurrence{
		{ReminderID: paris.Reminder, LocationID: paris.Location, FireAt: day.Add(8 * time.Hour), ExpiresAt: day.Add(8*time.Hour + 15*time.Minute),
			State: store.OccDone, GroupsTotal: 4, GroupsDone: 4, Delivered: 120, Failed: 3, Expired: 1, FiredAt: &fired, DoneAt: &done},
		{ReminderID: ny.Reminder, LocationID: ny.Location, FireAt: day.Add(14 * time.Hour), ExpiresAt: day.Add(14*time.Hour + 15*time.Minute),
			State: store.OccFiring, GroupsTotal: 4, GroupsDone: 1, Delivered: 7},
		{ReminderID: paris.Reminder, LocationID: paris.Location, FireAt: day.Add(32 * time.Hour), ExpiresAt: day.Add(32*time.Hour + 15*time.Minute),
			State: store.OccScheduled, GroupsTotal: 4},
		// Another reminder's occurrence is not listed.
		{ReminderID: b.storedReminder("other").ID, LocationID: paris.Location, FireAt: day.Add(9 * time.Hour), ExpiresAt: day.Add(10 * time.Hour),
			State: store.OccDone, GroupsTotal: 256, GroupsDone: 256},
	}
	require.NoError(t, b.env.DB.Create(&rows).Error)

	list := func(query string) []api.Occurrence {
		t.Helper()
		var out struct {
			Occurrences []api.Occurrence `json:"occurrences"`
		}
		requireJSON(t, b.as(http.MethodGet, "/v1/occurrences"+query, nil), http.StatusOK, &out)
		return out.Occurrences
	}
	got := list("?reminder=r")
	require.Len(t, got, 3)
	// Newest first.
	require.Equal(t, []int64{rows[2].ID, rows[1].ID, rows[0].ID}, []int64{got[0].ID, got[1].ID, got[2].ID})
	require.True(t, slices.IsSortedFunc(got, func(a, b api.Occurrence) int { return b.FireAt.Compare(a.FireAt) }))

	o := got[2]
	require.Equal(t, "r", o.Reminder)
	require.Equal(t, "paris", o.Location)
	require.Equal(t, "Europe/Paris", o.Zone)
	require.Equal(t, store.OccDone, o.State)
	require.True(t, rows[0].FireAt.Equal(o.FireAt), "fire_at %v", o.FireAt)
	require.True(t, rows[0].ExpiresAt.Equal(o.ExpiresAt))
	require.Equal(t, 4, o.GroupsDone)
	require.Equal(t, 4, o.GroupsTotal)
	require.Equal(t, int64(120), o.Delivered)
	require.Equal(t, int64(3), o.Failed)
	require.Equal(t, int64(1), o.Expired)
	require.NotNil(t, o.FiredAt)
	require.True(t, fired.Equal(*o.FiredAt), "fired_at %v", o.FiredAt)
	require.NotNil(t, o.DoneAt)
	require.True(t, done.Equal(*o.DoneAt))

	o = got[1]
	require.Equal(t, "new-york", o.Location)
	require.Equal(t, "America/New_York", o.Zone)
	require.Equal(t, store.OccFiring, o.State)
	require.Equal(t, 1, o.GroupsDone)
	require.Equal(t, int64(7), o.Delivered)
	require.Nil(t, o.DoneAt)
	require.Equal(t, store.OccScheduled, got[0].State)

	// Filters.
	got = list("?reminder=r&state=done")
	require.Len(t, got, 1)
	require.Equal(t, rows[0].ID, got[0].ID)
	got = list("?reminder=r&limit=1")
	require.Len(t, got, 1)
	require.Equal(t, rows[2].ID, got[0].ID)

	// Errors.
	requireProblem(t, b.as(http.MethodGet, "/v1/occurrences", nil), http.StatusBadRequest, "reminder")
	requireProblem(t, b.as(http.MethodGet, "/v1/occurrences?reminder=", nil), http.StatusBadRequest, "reminder")
	requireProblem(t, b.as(http.MethodGet, "/v1/occurrences?reminder=nope", nil), http.StatusNotFound, `"nope"`)
	requireProblem(t, b.as(http.MethodGet, "/v1/occurrences?reminder=r&limit=0", nil), http.StatusBadRequest, "limit")
	requireProblem(t, b.req(http.MethodGet, "/v1/occurrences?reminder=r", b.keyB, nil), http.StatusNotFound, `"r"`)
}

func TestUnknownEndpoint(t *testing.T) {
	b := setup(t)
	requireProblem(t, b.as(http.MethodGet, "/v1/nothing", nil), http.StatusNotFound, "/v1/nothing")
	r := b.req(http.MethodGet, "/healthz", "", nil)
	requireJSON(t, r, http.StatusOK, nil)
	require.JSONEq(t, `{"status":"ok"}`, string(r.Body))
}

// Concurrent first PUTs of the same new reminder and location all succeed:
// one creates, the others replace, and one reminder and location exist.
func TestConcurrentCreatesOfTheSameReminder(t *testing.T) {
	b := setup(t)
	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := b.as(http.MethodPut, "/v1/reminders/race", map[string]any{"title": "T", "times": []api.ReminderTime{at("oslo", "Europe/Oslo", "07:00")}})
			statuses[i] = r.Status
		}()
	}
	wg.Wait()
	created := 0
	for _, st := range statuses {
		require.Contains(t, []int{http.StatusOK, http.StatusCreated}, st)
		if st == http.StatusCreated {
			created++
		}
	}
	require.Equal(t, 1, created, "statuses %v", statuses)
	require.EqualValues(t, 1, b.count(&store.Reminder{}))
	require.EqualValues(t, 1, b.count(&store.Location{}))
	require.EqualValues(t, 1, b.count(&store.ReminderTime{}))
}

// The next fires are computed with the scheduler's rules: New York's 02:30
// on the night clocks jump from 02:00 to 03:00 fires at 03:00 EDT, the first
// instant after the gap.
func TestUpcoming(t *testing.T) {
	now := time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC)
	b := setupWith(t, api.Config{Now: func() time.Time { return now }})
	requireJSON(t, b.as(http.MethodPut, "/v1/reminders/fajr", map[string]any{"title": "Fajr", "times": []api.ReminderTime{
		at("new-york", "America/New_York", "02:30"), at("jakarta", "Asia/Jakarta", "04:30")}}), http.StatusCreated, nil)

	var out struct {
		Reminder string
		Upcoming []api.Upcoming
	}
	requireJSON(t, b.as(http.MethodGet, "/v1/reminders/fajr/upcoming?hours=36", nil), http.StatusOK, &out)
	require.Equal(t, "fajr", out.Reminder)
	var got []string
	for _, u := range out.Upcoming {
		got = append(got, u.Location+" "+u.FireAt.Format(time.RFC3339)+" "+u.Local)
	}
	require.Equal(t, []string{
		"jakarta 2026-03-07T21:30:00Z 2026-03-08T04:30:00+07:00",
		"new-york 2026-03-08T07:00:00Z 2026-03-08T03:00:00-04:00",
		"jakarta 2026-03-08T21:30:00Z 2026-03-09T04:30:00+07:00",
	}, got)

	requireProblem(t, b.as(http.MethodGet, "/v1/reminders/fajr/upcoming?hours=0", nil), http.StatusBadRequest, "hours")
	requireProblem(t, b.as(http.MethodGet, "/v1/reminders/nope/upcoming", nil), http.StatusNotFound)
}

func TestPausedRoundTrip(t *testing.T) {
	b := setup(t)
	body := map[string]any{"title": "T", "paused": true, "times": []api.ReminderTime{at("rome", "Europe/Rome", "08:00")}}
	var out api.Reminder
	requireJSON(t, b.as(http.MethodPut, "/v1/reminders/p", body), http.StatusCreated, &out)
	require.True(t, out.Paused)
	require.True(t, b.storedReminder("p").Paused)
	delete(body, "paused") // a replace without it unpauses
	requireJSON(t, b.as(http.MethodPut, "/v1/reminders/p", body), http.StatusOK, &out)
	require.False(t, out.Paused)
	requireProblem(t, b.as(http.MethodPut, "/v1/reminders/p", map[string]any{"title": "T", "paused": "yes",
		"times": []api.ReminderTime{at("rome", "Europe/Rome", "08:00")}}), http.StatusBadRequest, "paused")
	require.False(t, b.storedReminder("p").Paused)
}

// Injects: UUID and other string subscribers registered, registered again
// unchanged, then half of them moved to another location, through the bulk
// API. Checks: the index holds each user once in the right place, and the
// unchanged second request added nothing to the packed strings (their
// total length is 17 bytes a UUID and length+1 for the others, counted
// after each step).
func TestBulkSubscribeStringIDsStayCompact(t *testing.T) {
	b := setup(t)
	const groups = 8
	b.putReminder("s", map[string]any{"title": "T", "groups": groups, "times": []api.ReminderTime{
		at("paris", "Europe/Paris", "09:00"), at("london", "Europe/London", "09:00")}})
	var subs []sub
	want := map[string]map[string]int{"paris": {}, "london": {}}
	for i := range 300 {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i*2654435761%(1<<32), i)
		if i%3 == 0 {
			id = fmt.Sprintf("ünï-%d", i)
		}
		subs = append(subs, sub{UserID: id, Location: "paris"})
	}
	packedBytes := func() int64 {
		keys, err := b.env.Redis.Keys(context.Background(), b.env.Prefix+"*:p:*").Result()
		require.NoError(t, err)
		var n int64
		for _, k := range keys {
			n += b.env.Redis.StrLen(context.Background(), k).Val()
		}
		return n
	}
	size := func(ss []sub) (n int64) {
		for _, s := range ss {
			if strings.HasPrefix(s.UserID, "ü") {
				n += int64(len(s.UserID)) + 1
			} else {
				n += 17
			}
		}
		return n
	}
	b.subscribe("s", subs)
	require.Equal(t, size(subs), packedBytes())
	b.subscribe("s", subs)
	require.Equal(t, size(subs), packedBytes(), "an unchanged registration adds nothing")

	for i := range subs {
		if i%2 == 0 {
			subs[i].Location = "london"
		}
		want[subs[i].Location][subs[i].UserID] = grouping.Of(subs[i].UserID, groups)
	}
	b.subscribe("s", subs)
	require.Equal(t, size(subs), packedBytes(), "a move removes the old entry")
	for name, users := range want {
		requireMembers(t, users, b.indexed(b.loc("s", name), groups), name)
	}
}
