package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/store"
)

// Bad input to the inbox, contact, announcement and status routes gets a
// problem document and changes nothing.
func TestOnlineRoutesRejectBadInput(t *testing.T) {
	b := setup(t)
	many := make([]string, 1001)
	for i := range many {
		many[i] = "o1"
	}
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		mention            []string
	}{
		{"ack without body", "POST", "/v1/users/u1/inbox/ack", nil, 400, []string{"empty"}},
		{"ack with no ids", "POST", "/v1/users/u1/inbox/ack", map[string]any{"ids": []string{}}, 422, []string{"ids"}},
		{"ack with too many ids", "POST", "/v1/users/u1/inbox/ack", map[string]any{"ids": many}, 422, []string{"1000"}},
		{"ack with an empty id", "POST", "/v1/users/u1/inbox/ack", map[string]any{"ids": []string{"o1", ""}}, 422, []string{"ids[1]"}},
		{"read with unknown field", "POST", "/v1/users/u1/inbox/read", map[string]any{"ids": []string{"o1"}, "all": true}, 400, []string{"all"}},
		{"read with ids not a list", "POST", "/v1/users/u1/inbox/read", rawBody(`{"ids":"o1"}`), 400, []string{"ids"}},
		{"user id with a space", "GET", "/v1/users/a%20b/inbox", nil, 422, []string{"user_id"}},
		{"messages limit 0", "GET", "/v1/users/u1/messages?limit=0", nil, 400, []string{"limit"}},
		{"own contact", "PUT", "/v1/users/u1/contacts/u1", nil, 422, []string{"own contact"}},
		{"contact id with a space", "PUT", "/v1/users/u1/contacts/a%20b", nil, 422, []string{"contact_id"}},
		{"unknown contact", "DELETE", "/v1/users/u1/contacts/nobody", nil, 404, []string{"nobody"}},
		{"bad region", "GET", "/v1/regions/-x/announcements", nil, 422, []string{"region"}},
		{"cursor not a number", "GET", "/v1/regions/eu/announcements?after=abc", nil, 400, []string{"after"}},
		{"negative cursor", "GET", "/v1/regions/eu/announcements?after=-1", nil, 400, []string{"after"}},
		{"announcement without title", "POST", "/v1/regions/eu/announcements", map[string]any{"body": "b"}, 422, []string{"title"}},
		{"announcement data not an object", "POST", "/v1/regions/eu/announcements", map[string]any{"title": "t", "data": []int{1}}, 422, []string{"data"}},
		{"occurrence id not a number", "GET", "/v1/occurrences/x/status", nil, 400, []string{"occurrence ID"}},
		{"unknown occurrence", "GET", "/v1/occurrences/999/status", nil, 404, []string{"999"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireProblem(t, b.as(tc.method, tc.path, tc.body), tc.status, tc.mention...)
		})
	}
	require.Zero(t, b.count(&store.Contact{}))
	var out struct{ Cursor int64 }
	requireJSON(t, b.as("GET", "/v1/regions/eu/announcements", nil), http.StatusOK, &out)
	require.Zero(t, out.Cursor, "no announcement was stored")
}

// The inbox through the API: pending messages are listed, acknowledging
// moves them to unread, DELETE acknowledges all, read receipts clear them;
// another app's key sees an empty inbox for the same user ID.
func TestInboxThroughTheAPI(t *testing.T) {
	env := setup(t)
	store := inbox.New(inbox.Config{Prefix: env.env.Prefix}, env.env.Redis)
	ctx := context.Background()
	now := time.Now()
	for i, id := range []string{"o1", "o2", "o3"} {
		_, err := store.Add(ctx, env.appA.ID, "ann", inbox.Message{ID: id, Title: "T" + id}, now.Add(time.Duration(i)*time.Millisecond))
		require.NoError(t, err)
	}
	var in api.InboxContents
	requireJSON(t, env.as("GET", "/v1/users/ann/inbox", nil), http.StatusOK, &in)
	require.Equal(t, []string{"o1", "o2", "o3"}, ids(in.Pending))
	require.Empty(t, in.Unread)

	var acked struct{ Acknowledged []string }
	requireJSON(t, env.as("POST", "/v1/users/ann/inbox/ack", map[string]any{"ids": []string{"o2", "o9"}}), http.StatusOK, &acked)
	require.Equal(t, []string{"o2"}, acked.Acknowledged, "unknown IDs are ignored")
	requireJSON(t, env.as("GET", "/v1/users/ann/inbox", nil), http.StatusOK, &in)
	require.Equal(t, []string{"o1", "o3"}, ids(in.Pending))
	require.Equal(t, []string{"o2"}, ids(in.Unread))

	requireJSON(t, env.as("DELETE", "/v1/users/ann/inbox", nil), http.StatusOK, &acked)
	require.ElementsMatch(t, []string{"o1", "o3"}, acked.Acknowledged)
	requireJSON(t, env.as("GET", "/v1/users/ann/inbox", nil), http.StatusOK, &in)
	require.Empty(t, in.Pending)
	require.Len(t, in.Unread, 3)

	var read struct{ Read []string }
	requireJSON(t, env.as("POST", "/v1/users/ann/inbox/read", map[string]any{"ids": []string{"o1", "o2"}}), http.StatusOK, &read)
	require.Equal(t, []string{"o1", "o2"}, read.Read)
	requireJSON(t, env.as("GET", "/v1/users/ann/inbox", nil), http.StatusOK, &in)
	require.Equal(t, []string{"o3"}, ids(in.Unread))

	requireJSON(t, env.req("GET", "/v1/users/ann/inbox", env.keyB, nil), http.StatusOK, &in)
	require.Empty(t, in.Pending)
	require.Empty(t, in.Unread)
}

func ids(ms []inbox.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// Announcements by cursor: IDs increase per region; a client without a
// cursor starts at the newest (gets none, and the newest ID as its cursor);
// with a cursor it gets the newer ones. Regions and apps are separate.
func TestAnnouncementsByCursor(t *testing.T) {
	b := setup(t)
	type page struct {
		Announcements []inbox.Announcement
		Cursor        int64
	}
	var p page
	requireJSON(t, b.as("GET", "/v1/regions/jakarta/announcements", nil), http.StatusOK, &p)
	require.Empty(t, p.Announcements)
	require.Zero(t, p.Cursor)
	for i, title := range []string{"one", "two", "three"} {
		var an inbox.Announcement
		requireJSON(t, b.as("POST", "/v1/regions/jakarta/announcements", map[string]any{"title": title, "data": map[string]int{"n": i}}), http.StatusCreated, &an)
		require.EqualValues(t, i+1, an.ID)
		require.Equal(t, title, an.Title)
	}
	requireJSON(t, b.as("GET", "/v1/regions/jakarta/announcements", nil), http.StatusOK, &p)
	require.Empty(t, p.Announcements, "a new client starts at the newest")
	require.EqualValues(t, 3, p.Cursor)
	requireJSON(t, b.as("GET", "/v1/regions/jakarta/announcements?after=1", nil), http.StatusOK, &p)
	require.Len(t, p.Announcements, 2)
	require.Equal(t, "two", p.Announcements[0].Title)
	require.JSONEq(t, `{"n":2}`, string(p.Announcements[1].Data))
	require.EqualValues(t, 3, p.Cursor)
	requireJSON(t, b.as("GET", "/v1/regions/jakarta/announcements?after=0&limit=1", nil), http.StatusOK, &p)
	require.Equal(t, "one", p.Announcements[0].Title)
	require.EqualValues(t, 1, p.Cursor)
	requireJSON(t, b.as("GET", "/v1/regions/jakarta/announcements?after=3", nil), http.StatusOK, &p)
	require.Empty(t, p.Announcements)
	require.EqualValues(t, 3, p.Cursor)

	requireJSON(t, b.as("GET", "/v1/regions/cairo/announcements?after=0", nil), http.StatusOK, &p)
	require.Empty(t, p.Announcements, "another region")
	requireJSON(t, b.req("GET", "/v1/regions/jakarta/announcements?after=0", b.keyB, nil), http.StatusOK, &p)
	require.Empty(t, p.Announcements, "another app")
}

// The reminder flags for offline users round-trip and are stored.
func TestReminderOnlineFlags(t *testing.T) {
	b := setup(t)
	body := map[string]any{"title": "T", "deliver_when_online": true, "notify_contacts": true,
		"times": []api.ReminderTime{at("rome", "Europe/Rome", "08:00")}}
	var out api.Reminder
	requireJSON(t, b.as(http.MethodPut, "/v1/reminders/r", body), http.StatusCreated, &out)
	require.True(t, out.DeliverWhenOnline)
	require.True(t, out.NotifyContacts)
	stored := b.storedReminder("r")
	require.True(t, stored.DeliverWhenOnline)
	require.True(t, stored.NotifyContacts)
	delete(body, "notify_contacts")
	requireJSON(t, b.as(http.MethodPut, "/v1/reminders/r", body), http.StatusOK, &out)
	require.False(t, out.NotifyContacts)
	require.True(t, out.DeliverWhenOnline)
}

// With user_id the server keeps each user's cursor: a user new to the
// region starts at the newest, then gets only what is newer on each read.
func TestAnnouncementsServerCursor(t *testing.T) {
	b := setup(t)
	type page struct {
		Announcements []inbox.Announcement
		Cursor        int64
	}
	post := func(title string) {
		requireJSON(t, b.as("POST", "/v1/regions/cairo/announcements", map[string]any{"title": title}), http.StatusCreated, nil)
	}
	post("old")
	var p page
	requireJSON(t, b.as("GET", "/v1/regions/cairo/announcements?user_id=u1", nil), http.StatusOK, &p)
	require.Empty(t, p.Announcements, "a new user starts at the newest")
	require.EqualValues(t, 1, p.Cursor)
	post("new1")
	post("new2")
	requireJSON(t, b.as("GET", "/v1/regions/cairo/announcements?user_id=u1&limit=1", nil), http.StatusOK, &p)
	require.Equal(t, "new1", p.Announcements[0].Title)
	requireJSON(t, b.as("GET", "/v1/regions/cairo/announcements?user_id=u1", nil), http.StatusOK, &p)
	require.Len(t, p.Announcements, 1)
	require.Equal(t, "new2", p.Announcements[0].Title)
	requireJSON(t, b.as("GET", "/v1/regions/cairo/announcements?user_id=u1", nil), http.StatusOK, &p)
	require.Empty(t, p.Announcements)
	require.EqualValues(t, 3, p.Cursor)
	requireJSON(t, b.req("GET", "/v1/regions/cairo/announcements?user_id=u1", b.keyB, nil), http.StatusOK, &p)
	require.Zero(t, p.Cursor, "another app's region and user")
	requireProblem(t, b.as("GET", "/v1/regions/cairo/announcements?user_id=a%20b", nil), http.StatusBadRequest, "user_id")
}
