package api_test

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/prayer"
)

// city is a location with coordinates and, optionally, its own convention.
type city struct {
	name, zone     string
	lat, lon       float64
	method, madhab string
}

var prayerCities = []city{
	{name: "makkah", zone: "Asia/Riyadh", lat: 21.4225, lon: 39.8262, method: "umm_al_qura"},
	{name: "jakarta", zone: "Asia/Jakarta", lat: -6.2088, lon: 106.8456},
	{name: "london", zone: "Europe/London", lat: 51.5074, lon: -0.1278, method: "moonsighting_committee"},
	{name: "karachi", zone: "Asia/Karachi", lat: 24.8607, lon: 67.0011, madhab: "hanafi"},
	{name: "oslo", zone: "Europe/Oslo", lat: 59.9139, lon: 10.7522},
}

// putCities stores the cities' coordinates and overrides as app A's
// locations and returns them as a reminder's locations.
func (b *bundle) putCities(cities []city) []api.Place {
	b.t.Helper()
	var places []api.Place
	for _, c := range cities {
		body := map[string]any{"zone": c.zone, "latitude": c.lat, "longitude": c.lon, "method": c.method, "madhab": c.madhab}
		r := b.as(http.MethodPut, "/v1/locations/"+c.name, body)
		require.Contains(b.t, []int{http.StatusOK, http.StatusCreated}, r.Status, "body: %s", r.Body)
		places = append(places, api.Place{Location: c.name, Zone: c.zone})
	}
	return places
}

// wantPrayerLines computes, with package prayer's own Compute, the lines
// upcoming should list for a prayer reminder over (from, to]: each city's
// convention (its override, else the reminder's), each prayer at its
// offset, on the dates match accepts.
func wantPrayerLines(t *testing.T, cities []city, method, madhab string, prayers map[prayer.Prayer]time.Duration,
	from, to time.Time, match func(localtime.Date) bool) []string {
	t.Helper()
	type line struct {
		at   time.Time
		loc  string
		text string
	}
	var lines []line
	for _, c := range cities {
		loc, err := time.LoadLocation(c.zone)
		require.NoError(t, err)
		p, err := prayer.MethodParams(cmp.Or(c.method, method))
		require.NoError(t, err)
		p.Madhab = prayer.Madhab(cmp.Or(c.madhab, madhab, "shafi"))
		for _, d := range localtime.Dates(from.Add(-48*time.Hour), to.Add(24*time.Hour), loc) {
			if match != nil && !match(d) {
				continue
			}
			times, err := prayer.Compute(d, loc, prayer.Coordinates{Latitude: c.lat, Longitude: c.lon}, p)
			require.NoError(t, err)
			for pr, off := range prayers {
				base := times.Of(pr)
				at := base.Add(off)
				if at.After(from) && !at.After(to) {
					lines = append(lines, line{at, c.name, fmt.Sprintf("%s %s %s %s %s computed", at.UTC().Format(time.RFC3339), c.name,
						at.In(loc).Format(time.RFC3339), base.In(loc).Format("15:04:05"), pr)})
				}
			}
		}
	}
	slices.SortFunc(lines, func(a, b line) int { return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.loc, b.loc)) })
	out := []string{}
	for _, l := range lines {
		out = append(out, l.text)
	}
	return out
}

func prayerLines(out upcomingOut) []string {
	got := []string{}
	for _, u := range out.Upcoming {
		got = append(got, fmt.Sprintf("%s %s %s %s %s %s", u.FireAt.Format(time.RFC3339), u.Location, u.Local, u.LocalTime, u.Prayer, u.Source))
	}
	return got
}

// A prayer reminder over five cities lists, for two days, fajr ten
// minutes early, asr on time and maghrib five minutes late, each at the
// instant package prayer computes for that city and date by the city's
// own convention where it has one (Makkah Umm al-Qura, London the
// Moonsighting Committee, Karachi's Hanafi asr) and the reminder's
// elsewhere; the reminder shows its prayers as given.
func TestUpcomingPrayerReminder(t *testing.T) {
	now := time.Date(2026, 3, 27, 6, 0, 0, 0, time.UTC) // London's clocks go forward on the 29th
	b := setupWith(t, api.Config{Now: func() time.Time { return now }})
	places := b.putCities(prayerCities)
	rem := b.putReminder("salah", map[string]any{"kind": "prayer", "title": "Prayer", "locations": places, "method": "muslim_world_league",
		"prayers": []map[string]string{{"prayer": "fajr", "offset": "-10m"}, {"prayer": "asr", "offset": "0"}, {"prayer": "maghrib", "offset": "5m"}}})
	require.Equal(t, "prayer", rem.Kind)
	require.Equal(t, []api.PrayerOffset{{Prayer: "fajr", Offset: "-10m0s"}, {Prayer: "asr", Offset: "0s"}, {Prayer: "maghrib", Offset: "5m0s"}}, rem.Prayers)
	require.Equal(t, "muslim_world_league", rem.Method)

	want := wantPrayerLines(t, prayerCities, "muslim_world_league", "",
		map[prayer.Prayer]time.Duration{prayer.Fajr: -10 * time.Minute, prayer.Asr: 0, prayer.Maghrib: 5 * time.Minute}, now, now.Add(72*time.Hour), nil)
	require.Len(t, want, 5*3*3)
	require.Equal(t, want, prayerLines(b.upcoming("salah", 72)))
}

// One city checked against an official timetable rather than the package:
// Umm al-Qura's published fajr and maghrib in Makkah on 2016-01-05
// (prayer/testdata/Makkah-UmmAlQura.json, variance 0): 05:38 and 17:52.
func TestUpcomingPrayerMatchesAnOfficialTimetable(t *testing.T) {
	now := time.Date(2016, 1, 4, 18, 0, 0, 0, time.UTC)
	b := setupWith(t, api.Config{Now: func() time.Time { return now }})
	places := b.putCities([]city{{name: "makkah", zone: "Asia/Riyadh", lat: 21.427009, lon: 39.828685}})
	b.putReminder("salah", map[string]any{"kind": "prayer", "title": "Prayer", "locations": places, "method": "umm_al_qura",
		"prayers": []map[string]string{{"prayer": "fajr"}, {"prayer": "maghrib"}}})
	require.Equal(t, []string{
		"2016-01-05T02:38:00Z makkah 2016-01-05T05:38:00+03:00 05:38:00 fajr computed",
		"2016-01-05T14:52:00Z makkah 2016-01-05T17:52:00+03:00 17:52:00 maghrib computed",
	}, prayerLines(b.upcoming("salah", 24)))
}

// A dated row of the app's timetable reminder named for the prayer (an
// official mosque timetable) replaces the computed time at that location
// on that date only, offset included; another app's row of the same name
// changes nothing.
func TestPrayerTimetableRowTakesPrecedence(t *testing.T) {
	now := time.Date(2026, 3, 27, 6, 0, 0, 0, time.UTC)
	b := setupWith(t, api.Config{Now: func() time.Time { return now }})
	jakarta := prayerCities[1]
	places := b.putCities([]city{jakarta})
	b.putReminder("salah", map[string]any{"kind": "prayer", "title": "Prayer", "locations": places,
		"prayers": []map[string]string{{"prayer": "fajr", "offset": "-10m"}}})
	computed := prayerLines(b.upcoming("salah", 72))
	require.Len(t, computed, 3)

	b.putReminder("fajr", map[string]any{"kind": "timetable", "title": "Fajr", "paused": true})
	requireJSON(t, b.as(http.MethodPut, "/v1/reminders/fajr/timetable/jakarta/2026-03-29", map[string]string{"local_time": "04:20", "zone": "Asia/Jakarta"}), http.StatusOK, nil)
	// App B's timetable of the same name and location name.
	requireJSON(t, b.req(http.MethodPut, "/v1/reminders/fajr", b.keyB, map[string]any{"kind": "timetable", "title": "Fajr"}), http.StatusCreated, nil)
	requireJSON(t, b.req(http.MethodPut, "/v1/reminders/fajr/timetable/jakarta/2026-03-28", b.keyB, map[string]string{"local_time": "03:00", "zone": "Asia/Jakarta"}), http.StatusOK, nil)

	got := prayerLines(b.upcoming("salah", 72))
	require.Equal(t, []string{computed[0], "2026-03-28T21:10:00Z jakarta 2026-03-29T04:10:00+07:00 04:20:00 fajr timetable", computed[2]}, got)
}

// Jumu'ah: dhuhr thirty minutes early on Fridays only, by a weekly
// recurrence on each city's own calendar, over eight days.
func TestUpcomingJumuahOnlyOnFridays(t *testing.T) {
	now := time.Date(2026, 3, 23, 0, 0, 0, 0, time.UTC) // a Monday
	b := setupWith(t, api.Config{Now: func() time.Time { return now }})
	places := b.putCities(prayerCities)
	b.putReminder("jumuah", map[string]any{"kind": "prayer", "title": "Jumu'ah", "locations": places, "recurrence": "FREQ=WEEKLY;BYDAY=FR",
		"prayers": []map[string]string{{"prayer": "dhuhr", "offset": "-30m"}}})
	fridays := func(d localtime.Date) bool { return d.Midnight().Weekday() == time.Friday }
	want := wantPrayerLines(t, prayerCities, "", "", map[prayer.Prayer]time.Duration{prayer.Dhuhr: -30 * time.Minute}, now, now.Add(8*24*time.Hour), fridays)
	require.Len(t, want, len(prayerCities))
	got := b.upcoming("jumuah", 8*24)
	require.Equal(t, want, prayerLines(got))
	for _, u := range got.Upcoming {
		local, err := time.Parse(time.RFC3339, u.Local)
		require.NoError(t, err)
		require.Equal(t, time.Friday, local.Weekday())
	}
}

// Bad prayer reminders get 422 naming the field, and nothing is stored:
// no prayers, an unknown prayer, an offset beyond 6h, an unknown method,
// madhab or high-latitude rule, custom angles, no locations, a location
// without coordinates or that does not exist, and a convention or prayers
// on a daily reminder.
func TestPrayerReminderRejected(t *testing.T) {
	b := setup(t)
	places := b.putCities(prayerCities[:1])
	requireJSON(t, b.as(http.MethodPut, "/v1/locations/nowhere", map[string]any{"zone": "Asia/Tokyo"}), http.StatusCreated, nil)
	fajr := []map[string]string{{"prayer": "fajr", "offset": "-10m"}}
	body := func(extra map[string]any) map[string]any {
		m := map[string]any{"kind": "prayer", "title": "T", "locations": places, "prayers": fajr}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"no prayers", body(map[string]any{"prayers": nil}), "prayers"},
		{"unknown prayer", body(map[string]any{"prayers": []map[string]string{{"prayer": "duha"}}}), "prayers[0].prayer"},
		{"offset too far", body(map[string]any{"prayers": []map[string]string{{"prayer": "fajr", "offset": "-7h"}}}), "prayers[0].offset"},
		{"offset not a duration", body(map[string]any{"prayers": []map[string]string{{"prayer": "isha", "offset": "soon"}}}), "prayers[0].offset"},
		{"too many prayers", body(map[string]any{"prayers": slices.Repeat(fajr, 17)}), "prayers"},
		{"unknown method", body(map[string]any{"method": "julian"}), "method"},
		{"custom method", body(map[string]any{"method": "custom"}), "method"},
		{"unknown madhab", body(map[string]any{"madhab": "zahiri"}), "madhab"},
		{"unknown high-latitude rule", body(map[string]any{"high_latitude_rule": "angle"}), "high_latitude_rule"},
		{"no locations", body(map[string]any{"locations": nil}), "locations"},
		{"a location without coordinates", body(map[string]any{"locations": []api.Place{places[0], {Location: "nowhere", Zone: "Asia/Tokyo"}}}), "locations[1]"},
		{"a location that does not exist", body(map[string]any{"locations": []api.Place{{Location: "atlantis", Zone: "UTC"}}}), "locations[0]"},
		{"times on a prayer reminder", body(map[string]any{"times": []api.ReminderTime{at("makkah", "Asia/Riyadh", "05:00")}}), "times"},
		{"method on a daily reminder", map[string]any{"title": "T", "times": []api.ReminderTime{at("x", "UTC", "05:00")}, "method": "karachi"}, "method"},
		{"prayers on a daily reminder", map[string]any{"title": "T", "times": []api.ReminderTime{at("x", "UTC", "05:00")}, "prayers": fajr}, "prayers"},
		{"a bad recurrence", body(map[string]any{"recurrence": "FREQ=HOURLY"}), "recurrence"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.kindCounts()
			p := requireProblem(t, b.as(http.MethodPut, "/v1/reminders/bad", tc.body), http.StatusUnprocessableEntity)
			var fields []string
			for _, e := range p.Errors {
				fields = append(fields, e.Field)
			}
			require.Contains(t, fields, tc.field, "%+v", p)
			require.Equal(t, before, b.kindCounts(), "rows changed")
		})
	}
}
