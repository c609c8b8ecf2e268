package api_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/store"
)

type auditPage struct {
	Entries []struct {
		ID    int64 `json:"id"`
		Actor struct {
			Kind string `json:"kind"`
			ID   string `json:"id"`
		} `json:"actor"`
		Action   string                    `json:"action"`
		Resource string                    `json:"resource"`
		Diff     map[string]map[string]any `json:"diff"`
	} `json:"entries"`
	Next string `json:"next"`
}

// Injects: a reminder created, retitled and deleted with app A's key, a
// failed put, a timetable dry run, and a change made in-process as a
// console user (API.As).
// Checks: GET /v1/audit lists the three key changes and the console change,
// newest first, with the key's ID or the user's email, the route and
// resource, and the title's before and after; the failed put and the dry
// run are not recorded; pages follow next; app B sees none of A's entries;
// a bad before is a 400 naming it.
func TestAuditRecordsChanges(t *testing.T) {
	b := setup(t)
	times := []api.ReminderTime{at("paris", "Europe/Paris", "08:00")}
	b.putReminder("r", map[string]any{"title": "Old", "times": times})
	b.putReminder("r", map[string]any{"title": "New", "times": times})
	requireProblem(t, b.as(http.MethodPut, "/v1/reminders/r", map[string]any{"title": ""}), 422, "title")
	r := b.req(http.MethodPost, "/v1/timetable?dry_run=true", b.keyA, rawBody("location,zone,date,name,local_time\nparis,Europe/Paris,2027-01-01,r,05:00\n"), "Content-Type", "text/csv")
	requireProblem(t, r, 422, "daily reminder")
	require.Equal(t, http.StatusNoContent, b.as(http.MethodDelete, "/v1/reminders/r", nil).Status)

	// The console's way in: the same routes for an app and a user.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPut, "/v1/reminders/c", strings.NewReader(`{"title":"By console","times":[{"location":"paris","zone":"Europe/Paris","local_time":"09:00"}]}`))
	b.api.As(b.appA.ID, api.Actor{Kind: store.ActorConsole, ID: "pm@example.com"}).ServeHTTP(rec, req)
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())

	key, err := store.FindKeyByHash(t.Context(), b.env.DB, b.appA.ID, store.HashKey(b.keyA))
	require.NoError(t, err)
	var page auditPage
	requireJSON(t, b.as(http.MethodGet, "/v1/audit", nil), 200, &page)
	require.Len(t, page.Entries, 4)
	e := page.Entries
	require.Equal(t, store.ActorConsole, e[0].Actor.Kind)
	require.Equal(t, "pm@example.com", e[0].Actor.ID)
	require.Equal(t, "By console", e[0].Diff["title"]["after"])
	require.Equal(t, "DELETE /v1/reminders/{key}", e[1].Action)
	require.Equal(t, "New", e[1].Diff["title"]["before"])
	require.Nil(t, e[1].Diff["title"]["after"])
	require.Equal(t, "PUT /v1/reminders/{key}", e[2].Action)
	require.Equal(t, "/v1/reminders/r", e[2].Resource)
	require.Equal(t, map[string]any{"before": "Old", "after": "New"}, e[2].Diff["title"])
	require.NotContains(t, e[2].Diff, "times", "unchanged fields are not in the diff")
	require.Nil(t, e[3].Diff["title"]["before"])
	for _, x := range e[1:] {
		require.Equal(t, store.ActorKey, x.Actor.Kind)
		require.Equal(t, strconv.FormatInt(key.ID, 10), x.Actor.ID)
	}

	var p1, p2 auditPage
	requireJSON(t, b.as(http.MethodGet, "/v1/audit?limit=3", nil), 200, &p1)
	require.Len(t, p1.Entries, 3)
	requireJSON(t, b.as(http.MethodGet, "/v1/audit?limit=3&before="+p1.Next, nil), 200, &p2)
	require.Len(t, p2.Entries, 1)
	require.Equal(t, e[3].ID, p2.Entries[0].ID)

	var other auditPage
	requireJSON(t, b.req(http.MethodGet, "/v1/audit", b.keyB, nil), 200, &other)
	require.Empty(t, other.Entries)
	requireProblem(t, b.as(http.MethodGet, "/v1/audit?before=x", nil), 400, "before")
}

// TestAuditRecordsLocationChanges puts a location and then its coordinates
// through the real API and MariaDB, and a refused update. Checks: the audit
// log has the create and the update, newest first, each with the fields it
// changed before and after, and nothing for the refused one.
func TestAuditRecordsLocationChanges(t *testing.T) {
	b := setup(t)
	require.Equal(t, http.StatusCreated, b.as(http.MethodPut, "/v1/locations/makkah", map[string]any{"zone": "Asia/Riyadh"}).Status)
	requireProblem(t, b.as(http.MethodPut, "/v1/locations/makkah", map[string]any{"latitude": 91, "longitude": 0}), 422, "latitude")
	require.Equal(t, http.StatusOK, b.as(http.MethodPut, "/v1/locations/makkah", map[string]any{"latitude": 21.4225, "longitude": 39.8262, "method": "umm_al_qura"}).Status)
	var page auditPage
	requireJSON(t, b.as(http.MethodGet, "/v1/audit", nil), 200, &page)
	require.Len(t, page.Entries, 2)
	upd, create := page.Entries[0], page.Entries[1]
	require.Equal(t, "PUT /v1/locations/{location}", upd.Action)
	require.Equal(t, "/v1/locations/makkah", upd.Resource)
	require.Equal(t, map[string]any{"before": nil, "after": 21.4225}, upd.Diff["latitude"])
	require.Equal(t, map[string]any{"before": nil, "after": "umm_al_qura"}, upd.Diff["method"])
	require.NotContains(t, upd.Diff, "zone", "unchanged fields are not in the diff")
	require.Equal(t, "Asia/Riyadh", create.Diff["zone"]["after"])
	require.Nil(t, create.Diff["zone"]["before"])
}
