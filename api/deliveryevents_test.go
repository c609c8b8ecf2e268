package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/store"
)

// An app registers, reads, replaces and removes its delivery events
// endpoint. Injected: bad URLs (loopback, not http, too long), a bad
// secret, another app's key. Checked: a generated secret is shown once and
// stored sealed to the app; a registered one is never echoed; bad input is
// a 422 naming the field and changes nothing; another app sees 404; the
// changes are audited.
func TestDeliveryEventEndpointLifecycle(t *testing.T) {
	b := setup(t)
	var e api.DeliveryEventEndpoint
	requireJSON(t, b.as("PUT", "/v1/delivery-events/endpoint", map[string]any{"url": "https://hooks.example.com/chime"}), http.StatusCreated, &e)
	require.True(t, strings.HasPrefix(e.Secret, "whsec_"), "a generated secret is shown")
	var row store.DeliveryEventEndpoint
	require.NoError(t, b.env.DB.Where("app_id = ?", b.appA.ID).First(&row).Error)
	require.NotContains(t, row.Secret, e.Secret, "stored sealed")
	plain, err := b.keyring.Open(row.Secret, store.DeliveryEventSecretAAD(b.appA.ID))
	require.NoError(t, err)
	require.Equal(t, e.Secret, string(plain))
	_, err = b.keyring.Open(row.Secret, store.DeliveryEventSecretAAD(b.appB.ID))
	require.Error(t, err, "the sealed secret is bound to its app")

	var got api.DeliveryEventEndpoint
	requireJSON(t, b.as("GET", "/v1/delivery-events/endpoint", nil), http.StatusOK, &got)
	require.Equal(t, "https://hooks.example.com/chime", got.URL)
	require.Empty(t, got.Secret, "the secret is never shown again")
	requireProblem(t, b.req("GET", "/v1/delivery-events/endpoint", b.keyB, nil), http.StatusNotFound)

	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"url": "http://127.0.0.1:8080/x"}, "url"},
		{map[string]any{"url": "http://10.0.0.1/x"}, "url"},
		{map[string]any{"url": "ftp://hooks.example.com/x"}, "url"},
		{map[string]any{"url": "https://user:pw@hooks.example.com/x"}, "url"},
		{map[string]any{"url": "https://hooks.example.com/" + strings.Repeat("a", 2048)}, "url"},
		{map[string]any{"url": "http://2130706433/"}, "url"},
		{map[string]any{"url": "https://hooks.example.com/y", "secret": "not-a-secret"}, "secret"},
	} {
		p := requireProblem(t, b.as("PUT", "/v1/delivery-events/endpoint", tc.body), http.StatusUnprocessableEntity, tc.field)
		require.Equal(t, tc.field, p.Errors[0].Field, tc.body)
	}
	requireJSON(t, b.as("GET", "/v1/delivery-events/endpoint", nil), http.StatusOK, &got)
	require.Equal(t, "https://hooks.example.com/chime", got.URL, "bad input changed nothing")

	const mine = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	requireJSON(t, b.as("PUT", "/v1/delivery-events/endpoint", map[string]any{"url": "https://hooks.example.com/v2", "secret": mine}), http.StatusOK, &got)
	require.Empty(t, got.Secret, "a registered secret is not echoed")
	require.NoError(t, b.env.DB.Where("app_id = ?", b.appA.ID).First(&row).Error)
	plain, err = b.keyring.Open(row.Secret, store.DeliveryEventSecretAAD(b.appA.ID))
	require.NoError(t, err)
	require.Equal(t, mine, string(plain))

	requireProblem(t, b.req("DELETE", "/v1/delivery-events/endpoint", b.keyB, nil), http.StatusNotFound)
	require.Equal(t, http.StatusNoContent, b.as("DELETE", "/v1/delivery-events/endpoint", nil).Status)
	requireProblem(t, b.as("GET", "/v1/delivery-events/endpoint", nil), http.StatusNotFound)
	requireProblem(t, b.as("DELETE", "/v1/delivery-events/endpoint", nil), http.StatusNotFound)

	var audit struct{ Entries []api.AuditEntry }
	requireJSON(t, b.as("GET", "/v1/audit", nil), http.StatusOK, &audit)
	var actions []string
	for _, a := range audit.Entries {
		if a.Resource == "/v1/delivery-events/endpoint" || strings.Contains(a.Resource, "delivery-events") {
			actions = append(actions, a.Action)
		}
	}
	require.Len(t, actions, 3, "two PUTs and a DELETE audited: %v", audit.Entries)
}

// Without CHIME_SECRET_KEYS an endpoint cannot be registered: its secret
// would have to be stored in the clear.
func TestDeliveryEventEndpointNeedsSecretKeys(t *testing.T) {
	b := setupWith(t, api.Config{})
	requireProblem(t, b.as("PUT", "/v1/delivery-events/endpoint", map[string]any{"url": "https://hooks.example.com/chime"}),
		http.StatusServiceUnavailable, "CHIME_SECRET_KEYS")
	require.Zero(t, b.count(&store.DeliveryEventEndpoint{}))
}

// Opens reported through the API and by inbox reads are counted once per
// user and occurrence. Injected: overlapping and repeated user IDs, an
// inbox read of the occurrence's message, another app's key, bad bodies.
// Checked: opens and open_rate on GET /v1/occurrences/{id} and in the
// list; another app gets 404 and counts nothing; bad input is a 422 naming
// the field and counts nothing.
func TestOpensAreCountedOncePerUser(t *testing.T) {
	b := setup(t)
	b.putReminder("fajr", reminder("Fajr", at("jakarta", "Asia/Jakarta", "04:20")))
	rem := b.storedReminder("fajr")
	var loc store.Location
	require.NoError(t, b.env.DB.First(&loc).Error)
	occ := store.Occurrence{ReminderID: rem.ID, LocationID: loc.ID, FireAt: time.Now().UTC(), ExpiresAt: time.Now().UTC().Add(time.Hour),
		State: store.OccDone, Delivered: 8}
	require.NoError(t, b.env.DB.Create(&occ).Error)
	path := fmt.Sprintf("/v1/occurrences/%d/opens", occ.ID)
	opens := func() api.Occurrence {
		t.Helper()
		var o api.Occurrence
		requireJSON(t, b.as("GET", fmt.Sprintf("/v1/occurrences/%d", occ.ID), nil), http.StatusOK, &o)
		return o
	}

	var counted struct{ Counted int }
	requireJSON(t, b.as("POST", path, map[string]any{"user_ids": []string{"u1", "u2", "u1"}}), http.StatusOK, &counted)
	require.Equal(t, 2, counted.Counted)
	requireJSON(t, b.as("POST", path, map[string]any{"user_ids": []string{"u2", "u3"}}), http.StatusOK, &counted)
	require.Equal(t, 1, counted.Counted, "u2 opened it before")
	require.EqualValues(t, 3, opens().Opens)

	requireProblem(t, b.req("POST", path, b.keyB, map[string]any{"user_ids": []string{"u9"}}), http.StatusNotFound)
	requireProblem(t, b.as("POST", path, map[string]any{"user_ids": []string{}}), http.StatusUnprocessableEntity, "user_ids")
	many := make([]string, 1001)
	for i := range many {
		many[i] = fmt.Sprintf("x%d", i)
	}
	requireProblem(t, b.as("POST", path, map[string]any{"user_ids": many}), http.StatusUnprocessableEntity, "user_ids")
	p := requireProblem(t, b.as("POST", path, map[string]any{"user_ids": []string{strings.Repeat("z", 300)}}), http.StatusUnprocessableEntity)
	require.Equal(t, "user_ids[0]", p.Errors[0].Field)
	requireProblem(t, b.as("POST", "/v1/occurrences/0/opens", map[string]any{"user_ids": []string{"u1"}}), http.StatusNotFound)
	require.EqualValues(t, 3, opens().Opens, "refused requests counted nothing")

	// An inbox read of the occurrence's message is an open: counted for a
	// new user, not again for one who opened it.
	in := inbox.New(inbox.Config{Prefix: b.env.Prefix}, b.env.Redis)
	msg := fmt.Sprintf("o%d", occ.ID)
	for _, u := range []string{"u1", "u4"} {
		_, err := in.Add(context.Background(), b.appA.ID, u, inbox.Message{ID: msg, Title: "Fajr"}, time.Now())
		require.NoError(t, err)
		var read struct{ Read []string }
		requireJSON(t, b.as("POST", "/v1/users/"+u+"/inbox/read", map[string]any{"ids": []string{msg}}), http.StatusOK, &read)
		require.Equal(t, []string{msg}, read.Read)
	}
	o := opens()
	require.EqualValues(t, 4, o.Opens)
	require.InDelta(t, 0.5, o.OpenRate, 1e-9)

	var list struct{ Occurrences []api.Occurrence }
	requireJSON(t, b.as("GET", "/v1/occurrences?reminder=fajr", nil), http.StatusOK, &list)
	require.Len(t, list.Occurrences, 1)
	require.EqualValues(t, 4, list.Occurrences[0].Opens)
}
