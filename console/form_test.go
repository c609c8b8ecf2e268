package console

import (
	"net/url"
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

// Injects: a stored reminder with a spread, shown in the editor and sent
// back as its form fields; then the form with the spread cleared.
// Checks: the spread survives an edit in the console (the editor would
// otherwise drop it), and clearing the field sends none.
func TestEditorKeepsTheSpread(t *testing.T) {
	f := formOf(api.Reminder{Key: "sale", Kind: "once", Title: "Sale", ValidFor: "30m0s", Grace: "30m0s", Spread: "15m0s"})
	require.Equal(t, "15m0s", f.Spread)
	v := url.Values{"kind": {"once"}, "title": {"Sale"}, "spread": {" " + f.Spread + " "}}
	require.Equal(t, "15m0s", parseForm(v).input()["spread"])
	v.Set("spread", "")
	_, sent := parseForm(v).input()["spread"]
	require.False(t, sent)
}

// Injects: a stored reminder with a delivery policy (category, critical,
// quiet drop), shown in the editor and sent back as its form fields; then
// the form with them cleared. Checks: the policy survives an edit in the
// console, and clearing sends no category and critical false.
func TestEditorKeepsTheDeliveryPolicy(t *testing.T) {
	f := formOf(api.Reminder{Key: "sale", Kind: "daily", Title: "Sale", Category: "marketing", Critical: true, Quiet: "drop"})
	require.Equal(t, "marketing", f.Category)
	v := url.Values{"kind": {"daily"}, "title": {"Sale"}, "category": {f.Category}, "quiet": {f.Quiet}}
	if f.Critical {
		v.Set("critical", "on")
	}
	in := parseForm(v).input()
	require.Equal(t, "marketing", in["category"])
	require.Equal(t, "drop", in["quiet"])
	require.Equal(t, true, in["critical"])
	v.Del("critical")
	v.Set("category", "")
	in = parseForm(v).input()
	_, sent := in["category"]
	require.False(t, sent)
	require.Equal(t, false, in["critical"])
}
