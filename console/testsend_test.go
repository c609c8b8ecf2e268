package console_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/internal/testenv"
)

// Injects: a daily reminder with three subscribers on a running
// coordinator and worker (real MariaDB, Redis, webhook sink), a test send
// to one of them by the API, then bad test sends (no user, an invalid user
// ID, a user not subscribed, a location the reminder lacks, an unknown
// reminder, app B's key on app A's reminder), then sends past the limit.
// Checks: the test send is answered 202 with its occurrence, which the
// firer and worker take to done with 1 delivered; the sink got the message
// once for that user and never for the other two; the reminder's
// occurrence list leaves it out; each bad send is 422 naming its field or
// 404 and sends nothing; the app's sends past TestSendsPerMinute are 429
// with Retry-After.
func TestTestSend(t *testing.T) {
	b := setup(t)
	require.Equal(t, 201, b.call(b.keyA, "PUT", "/v1/reminders/standup", "", map[string]any{
		"title": "Standup", "times": []map[string]string{{"location": "paris", "zone": "Europe/Paris", "local_time": "09:30"}}}, nil))
	for _, u := range []string{"ana", "ben", "cy"} {
		require.Contains(t, []int{200, 201}, b.call(b.keyA, "PUT", "/v1/reminders/standup/subscribers/"+u, "", map[string]string{"location": "paris"}, nil))
	}
	var o api.Occurrence
	require.Equal(t, http.StatusAccepted, b.call(b.keyA, "POST", "/v1/reminders/standup/test-sends", "", map[string]string{"user_id": "ben"}, &o))
	require.Equal(t, "ben", o.TestUser)
	require.Equal(t, "paris", o.Location)
	testenv.WaitUntil(t, 30*time.Second, "the test send done", func() bool {
		b.call(b.keyA, "GET", fmt.Sprintf("/v1/occurrences/%d", o.ID), "", nil, &o)
		return o.State == "done"
	})
	require.Equal(t, int64(1), o.Delivered)
	require.Equal(t, 1, o.GroupsTotal)
	require.Equal(t, 1, b.sink.Count("ben"))
	require.Zero(t, b.sink.Count("ana"))
	require.Zero(t, b.sink.Count("cy"))
	var ch struct {
		Channels []struct {
			Channel string `json:"channel"`
			Sent    int64  `json:"sent"`
		} `json:"channels"`
	}
	require.Equal(t, 200, b.call(b.keyA, "GET", fmt.Sprintf("/v1/occurrences/%d/channels", o.ID), "", nil, &ch))
	// Push channels record counts per channel; the webhook's are the
	// occurrence's own.
	var list struct{ Occurrences []api.Occurrence }
	require.Equal(t, 200, b.call(b.keyA, "GET", "/v1/occurrences?reminder=standup&limit=100", "", nil, &list))
	for _, x := range list.Occurrences {
		require.NotEqual(t, o.ID, x.ID, "a test send is not in the reminder's occurrences")
		require.Empty(t, x.TestUser)
	}

	for _, c := range []struct {
		key, reminder string
		body          any
		status        int
	}{
		{b.keyA, "standup", map[string]string{}, 422},
		{b.keyA, "standup", map[string]string{"user_id": "bad\u0001id"}, 422},
		{b.keyA, "standup", map[string]string{"user_id": "nobody"}, 422},
		{b.keyA, "standup", map[string]string{"user_id": "ana", "location": "tokyo"}, 422},
		{b.keyA, "standup", map[string]any{"user_id": "ana", "extra": 1}, 400},
		{b.keyA, "missing", map[string]string{"user_id": "ana"}, 404},
		{b.keyB, "standup", map[string]string{"user_id": "ana"}, 404},
	} {
		require.Equal(t, c.status, b.call(c.key, "POST", "/v1/reminders/"+c.reminder+"/test-sends", "", c.body, nil), c.body)
	}
	raw := b.raw(b.keyA, "POST", "/v1/reminders/standup/test-sends", map[string]string{"user_id": "nobody"})
	require.Contains(t, raw, `"field":"user_id"`)
	require.Zero(t, b.sink.Count("ana"))
	require.Zero(t, b.sink.Count("nobody"))

	// One send is spent; the rest of the burst goes, then the limit holds.
	for range api.TestSendsPerMinute - 1 {
		require.Equal(t, http.StatusAccepted, b.call(b.keyA, "POST", "/v1/reminders/standup/test-sends", "", map[string]string{"user_id": "cy"}, nil))
	}
	req, _ := http.NewRequest("POST", b.url+"/v1/reminders/standup/test-sends", jsonBody(t, map[string]string{"user_id": "cy"}))
	req.Header.Set("Authorization", "Bearer "+b.keyA)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	require.NotEmpty(t, res.Header.Get("Retry-After"))
	// Another app's budget is its own.
	require.Equal(t, 201, b.call(b.keyB, "PUT", "/v1/reminders/standup", "", map[string]any{
		"title": "B", "times": []map[string]string{{"location": "paris", "zone": "Europe/Paris", "local_time": "09:30"}}}, nil))
	require.Contains(t, []int{200, 201}, b.call(b.keyB, "PUT", "/v1/reminders/standup/subscribers/zed", "", map[string]string{"location": "paris"}, nil))
	require.Equal(t, http.StatusAccepted, b.call(b.keyB, "POST", "/v1/reminders/standup/test-sends", "", map[string]string{"user_id": "zed"}, nil))
}
