package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/store"
)

// Injects: requests that the store refuses with one of its sentinel errors
// (a location named with another zone, by a reminder and by a timetable
// row; rows that do not exist; a user's 101st contact).
// Checks: each is answered with its problem (status and detail), and no
// table the API writes changed.
func TestStoreRefusalsAnswered(t *testing.T) {
	b := setup(t)
	b.putReminder("r", map[string]any{"title": "T", "times": []api.ReminderTime{at("paris", "Europe/Paris", "08:00")}})
	b.putReminder("tt", map[string]any{"kind": "timetable", "title": "Fajr"})
	for i := range store.MaxContacts {
		r := b.as(http.MethodPut, fmt.Sprintf("/v1/users/u1/contacts/c%d", i), nil)
		require.Equal(t, http.StatusCreated, r.Status, "body: %s", r.Body)
	}
	before := b.counts()
	contacts := b.count(&store.Contact{})
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		mention            []string
	}{
		{"reminder at a location of another zone", "PUT", "/v1/reminders/r2",
			map[string]any{"title": "T", "times": []api.ReminderTime{at("paris", "Asia/Tokyo", "08:00")}}, 409, []string{"paris", "Europe/Paris"}},
		{"timetable row at a location of another zone", "PUT", "/v1/reminders/tt/timetable/paris/2027-01-01",
			map[string]any{"local_time": "05:00", "zone": "Asia/Tokyo"}, 409, []string{"paris", "Europe/Paris"}},
		{"timetable row that is not there", "DELETE", "/v1/reminders/tt/timetable/paris/2027-01-01", nil, 404, []string{"paris", "2027-01-01"}},
		{"subscriber that is not there", "DELETE", "/v1/reminders/r/subscribers/nobody", nil, 404, []string{"nobody"}},
		{"occurrence that is not there", "GET", "/v1/occurrences/999", nil, 404, []string{"999"}},
		{"event that is not there", "GET", "/v1/events/999", nil, 404, []string{"999"}},
		{"device that is not there", "DELETE", "/v1/users/u1/devices/d9", nil, 404, []string{"d9"}},
		{"101st contact", "PUT", "/v1/users/u1/contacts/more", nil, 422, []string{"at most 100 contacts"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireProblem(t, b.as(tc.method, tc.path, tc.body), tc.status, tc.mention...)
		})
	}
	require.Equal(t, before, b.counts())
	require.Equal(t, contacts, b.count(&store.Contact{}))
}
