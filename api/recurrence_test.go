package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/recurrence"
	"github.com/chime-dev/chime/store"
)

// A recurring daily reminder lists only the dates its rule names, at each
// location's local time of day: a Tuesday stream at 20:00 in Paris and New
// York over two weeks (New York's clocks go back on 2026-11-01, Paris's a
// week earlier), and the first Monday of the month. The rule is kept and
// shown as given.
func TestUpcomingRecurringDaily(t *testing.T) {
	clock := newTestClock(time.Date(2026, 10, 26, 0, 0, 0, 0, time.UTC)) // a Monday
	b := setupWith(t, api.Config{Now: clock.Now})
	rem := b.putReminder("stream", map[string]any{"title": "Live", "recurrence": "FREQ=WEEKLY;BYDAY=TU",
		"times": []api.ReminderTime{at("paris", "Europe/Paris", "20:00"), at("new-york", "America/New_York", "20:00")}})
	require.Equal(t, "FREQ=WEEKLY;BYDAY=TU", rem.Recurrence)
	require.Equal(t, []string{
		"2026-10-27T19:00:00Z paris 2026-10-27T20:00:00+01:00 20:00:00",
		"2026-10-28T00:00:00Z new-york 2026-10-27T20:00:00-04:00 20:00:00",
		"2026-11-03T19:00:00Z paris 2026-11-03T20:00:00+01:00 20:00:00",
		"2026-11-04T01:00:00Z new-york 2026-11-03T20:00:00-05:00 20:00:00",
	}, upcomingLines(b.upcoming("stream", 14*24)))

	b.putReminder("townhall", map[string]any{"title": "Town hall", "recurrence": "RRULE:FREQ=MONTHLY;BYDAY=1MO",
		"times": []api.ReminderTime{at("tokyo", "Asia/Tokyo", "09:30")}})
	require.Equal(t, []string{
		"2026-11-02T00:30:00Z tokyo 2026-11-02T09:30:00+09:00 09:30:00",
	}, upcomingLines(b.upcoming("townhall", 744)))
	clock.Set(time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC))
	require.Equal(t, []string{
		"2026-12-07T00:30:00Z tokyo 2026-12-07T09:30:00+09:00 09:30:00",
		"2027-01-04T00:30:00Z tokyo 2027-01-04T09:30:00+09:00 09:30:00",
	}, upcomingLines(b.upcoming("townhall", 744)))
	clock.Set(time.Date(2026, 10, 26, 0, 0, 0, 0, time.UTC))
	require.Equal(t, "FREQ=MONTHLY;BYDAY=1MO", b.storedReminder("townhall").Recurrence)

	// Anchored at starts_at: every other day from 2026-10-27, in Tokyo's
	// dates.
	b.putReminder("alternate", map[string]any{"title": "Alt", "recurrence": "FREQ=DAILY;INTERVAL=2", "starts_at": "2026-10-26T20:00:00Z",
		"times": []api.ReminderTime{at("tokyo", "Asia/Tokyo", "08:00")}})
	require.Equal(t, []string{
		"2026-10-26T23:00:00Z tokyo 2026-10-27T08:00:00+09:00 08:00:00",
		"2026-10-28T23:00:00Z tokyo 2026-10-29T08:00:00+09:00 08:00:00",
	}, upcomingLines(b.upcoming("alternate", 4*24)))
}

// A day a zone skips whole fires at the first instant of the next day, for
// a daily reminder and a recurring one alike: Apia skipped Friday
// 2011-12-30, so both a daily 09:00 and a Fridays-only 09:00 fire at
// 2011-12-31 00:00 local (10:00 UTC on the 30th).
func TestUpcomingOnADaySkippedWhole(t *testing.T) {
	clock := newTestClock(time.Date(2011, 12, 29, 0, 0, 0, 0, time.UTC))
	b := setupWith(t, api.Config{Now: clock.Now})
	b.putReminder("daily", reminder("Daily", at("apia", "Pacific/Apia", "09:00")))
	b.putReminder("fridays", map[string]any{"title": "Fridays", "recurrence": "FREQ=WEEKLY;BYDAY=FR",
		"times": []api.ReminderTime{at("apia", "Pacific/Apia", "09:00")}})
	require.Equal(t, []string{
		"2011-12-29T19:00:00Z apia 2011-12-29T09:00:00-10:00 09:00:00",
		"2011-12-30T10:00:00Z apia 2011-12-31T00:00:00+14:00 09:00:00",
		"2011-12-30T19:00:00Z apia 2011-12-31T09:00:00+14:00 09:00:00",
	}, upcomingLines(b.upcoming("daily", 48)))
	require.Equal(t, []string{
		"2011-12-30T10:00:00Z apia 2011-12-31T00:00:00+14:00 09:00:00",
	}, upcomingLines(b.upcoming("fridays", 48)))
}

// Bad rules are refused with a problem naming the recurrence field, and
// nothing is stored: finer than daily, time-of-day parts, DTSTART, bounds,
// a rule that needs starts_at without one, one that matches no date or too
// rarely for its FREQ, and a recurrence on a kind that names its dates.
func TestRecurrenceRejected(t *testing.T) {
	clock := newTestClock(time.Date(2026, 10, 26, 0, 0, 0, 0, time.UTC))
	b := setupWith(t, api.Config{Now: clock.Now})
	times := []api.ReminderTime{at("paris", "Europe/Paris", "09:00")}
	daily := func(rule string) map[string]any {
		return map[string]any{"title": "T", "times": times, "recurrence": rule}
	}
	for _, tc := range []struct {
		name    string
		body    any
		mention string
	}{
		{"hourly", daily("FREQ=HOURLY"), "FREQ must be DAILY"},
		{"minutely", daily("FREQ=MINUTELY;BYDAY=MO"), "FREQ must be DAILY"},
		{"a time of day", daily("FREQ=DAILY;BYHOUR=9"), "takes no BYHOUR"},
		{"DTSTART", daily("DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY"), "DTSTART"},
		{"not a rule", daily("every tuesday"), "is not an RFC 5545 RRULE"},
		{"unknown weekday", daily("FREQ=WEEKLY;BYDAY=XX"), "recurrence"},
		{"count too high", map[string]any{"title": "T", "times": times, "recurrence": "FREQ=DAILY;COUNT=5000", "starts_at": "2026-11-01T00:00:00Z"}, "COUNT must be between 1 and 1000"},
		{"interval too high", daily("FREQ=DAILY;INTERVAL=100000"), "INTERVAL must be between"},
		{"count without starts_at", daily("FREQ=DAILY;COUNT=5"), "set starts_at"},
		{"weekly without a day or starts_at", daily("FREQ=WEEKLY"), "set starts_at"},
		{"no date at all", daily("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"), "matches no date"},
		{"too rare for daily", daily("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29"), "use a coarser FREQ"},
		{"too long", daily("FREQ=WEEKLY;BYDAY=" + repeatDays(200)), "at most 500 bytes"},
		{"on a timetable", map[string]any{"kind": "timetable", "title": "T", "recurrence": "FREQ=WEEKLY;BYDAY=FR"}, "only daily"},
		{"on a once reminder", map[string]any{"kind": "once", "title": "T", "at": "2026-11-01T00:00:00Z", "recurrence": "FREQ=DAILY"}, "only daily"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.kindCounts()
			r := b.as(http.MethodPut, "/v1/reminders/bad", tc.body)
			p := requireProblem(t, r, http.StatusUnprocessableEntity, tc.mention)
			var fields []string
			for _, e := range p.Errors {
				fields = append(fields, e.Field)
			}
			require.Contains(t, fields, "recurrence")
			require.Equal(t, before, b.kindCounts(), "rows changed")
		})
	}
	require.Equal(t, 1000, recurrence.MaxCount)
	var n int64
	require.NoError(t, b.env.DB.Model(&store.Reminder{}).Where("recurrence <> ''").Count(&n).Error)
	require.Zero(t, n)
}

func repeatDays(n int) string {
	s := "MO"
	for i := 1; i < n; i++ {
		s += ",MO"
	}
	return s
}
