package console

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
)

// Injects: a stored daily reminder with a time in each user's own zone
// beside a location's, and a local once reminder. Checks: the editor's
// form writes them back as they were (a user_zones time with no location,
// a wall-clock at with local), so saving from the console keeps them.
func TestFormKeepsUserZones(t *testing.T) {
	daily := api.Reminder{Key: "d", Kind: "daily", Title: "D", Times: []api.ReminderTime{
		{Location: "paris", Zone: "Europe/Paris", LocalTime: "08:00:00"}, {UserZones: true, LocalTime: "09:00:00"},
	}}
	f := formOf(daily)
	in := f.input()
	require.Empty(t, f.Errors)
	require.Equal(t, []api.ReminderTime{
		{Location: "paris", Zone: "Europe/Paris", LocalTime: "08:00:00"}, {UserZones: true, LocalTime: "09:00:00"},
	}, in["times"])

	at := time.Date(2026, 12, 24, 9, 0, 0, 0, time.UTC)
	f = formOf(api.Reminder{Key: "o", Kind: "once", Title: "O", At: &at, Local: true})
	require.Equal(t, "2026-12-24T09:00:00", f.At)
	in = f.input()
	require.Empty(t, f.Errors)
	require.Equal(t, "2026-12-24T09:00:00", in["at"])
	require.Equal(t, true, in["local"])

	f = formOf(api.Reminder{Key: "o", Kind: "once", Title: "O", At: &at})
	in = f.input()
	require.Equal(t, at, in["at"], "an instant stays one")
	require.Nil(t, in["local"])
}
