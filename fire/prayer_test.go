package fire

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/prayer"
	"github.com/chime-dev/chime/recurrence"
	"github.com/chime-dev/chime/store"
)

// ruleDays is the set of dates of a rule in [first, last], as the planner
// evaluates a rule that needs no anchor.
func ruleDays(t *testing.T, text string, first, last localtime.Date) func(localtime.Date) bool {
	t.Helper()
	rule, err := recurrence.Parse(text)
	require.NoError(t, err)
	ds, err := rule.Dates(localtime.Date{}, first, last)
	require.NoError(t, err)
	set := map[localtime.Date]bool{}
	for _, d := range ds {
		set[d] = true
	}
	return func(d localtime.Date) bool { return set[d] }
}

// Injects: a prayer reminder (fajr -10m, asr, maghrib +5m, weekdays only,
// muslim_world_league and hanafi) at Paris, whose location overrides the
// method with egyptian, over the week from Monday 2027-03-01; on the
// Wednesday a timetable row puts fajr at 05:00.
// Checks: the fires are exactly, in order, each weekday's fajr 10 minutes
// before, asr at, and maghrib 5 minutes after package prayer's times by
// egyptian with the hanafi madhab (the location's method, the reminder's
// madhab), each with that prayer's own time; none on the Saturday or
// Sunday; Wednesday's fajr at 04:50 from the row.
func TestPrayerFiresOffsetsDaysAndConvention(t *testing.T) {
	paris, err := localtime.LoadZone("Europe/Paris")
	require.NoError(t, err)
	coords := prayer.Coordinates{Latitude: 48.8566, Longitude: 2.3522, Elevation: 35}
	monday := localtime.Date{Year: 2027, Month: time.March, Day: 1}
	wednesday := monday.AddDays(2)
	from := localtime.On(2027, time.March, 1, 0, paris)
	to := localtime.On(2027, time.March, 8, 0, paris)

	pr := PrayerReminder{
		Prayers: []store.PrayerOffset{
			{Prayer: "fajr", Offset: -10 * time.Minute}, {Prayer: "asr"}, {Prayer: "maghrib", Offset: 5 * time.Minute},
		},
		Method: "muslim_world_league", Madhab: "hanafi",
		Days: ruleDays(t, "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", monday.AddDays(-3), monday.AddDays(10)),
	}
	pl := PrayerPlace{
		Coordinates: coords, Zone: paris, Method: "egyptian",
		Row: func(p prayer.Prayer, d localtime.Date) (int, bool) {
			return 5 * 3600, p == prayer.Fajr && d == wednesday
		},
	}
	got, err := PrayerFires(pr, pl, from, to)
	require.NoError(t, err)

	want := func() []PrayerFire {
		params, err := prayer.MethodParams("egyptian")
		require.NoError(t, err)
		params.Madhab = prayer.Hanafi
		var out []PrayerFire
		for i := range 5 {
			d := monday.AddDays(i)
			times, err := prayer.Compute(d, paris, coords, params)
			require.NoError(t, err)
			fajr, fromRow := times.Fajr, false
			if d == wednesday {
				fajr, fromRow = localtime.On(d.Year, d.Month, d.Day, 5*3600, paris).UTC(), true
			}
			out = append(out,
				PrayerFire{At: fajr.Add(-10 * time.Minute), Prayer: prayer.Fajr, Offset: -10 * time.Minute, Time: fajr, FromTimetable: fromRow},
				PrayerFire{At: times.Asr, Prayer: prayer.Asr, Time: times.Asr},
				PrayerFire{At: times.Maghrib.Add(5 * time.Minute), Prayer: prayer.Maghrib, Offset: 5 * time.Minute, Time: times.Maghrib})
		}
		return out
	}()
	require.Equal(t, want, got)
	for _, f := range got {
		wd := f.At.In(paris).Weekday()
		require.NotContains(t, []time.Weekday{time.Saturday, time.Sunday}, wd, "fire on %s", f.At.In(paris))
	}
	require.Equal(t, "04:50", got[6].At.In(paris).Format("15:04"))

	// The reminder's own method, where the location has none, gives
	// other times: the override is what moved them.
	pl.Method = ""
	own, err := PrayerFires(pr, pl, from, to)
	require.NoError(t, err)
	require.NotEqual(t, got[0].At, own[0].At)
}

// Injects: a daily fajr +10m reminder at Apia across 2011-12-30, the date
// Samoa skipped whole, and a reminder whose location names an unknown
// method.
// Checks: the skipped date's fajr fires at the first instant of the next
// date (with no prayer time of its own), the dates either side at their
// fajr plus 10 minutes; the unknown method is an error with no fires.
func TestPrayerFiresSkippedDateAndBadConvention(t *testing.T) {
	apia, err := localtime.LoadZone("Pacific/Apia")
	require.NoError(t, err)
	coords := prayer.Coordinates{Latitude: -13.83, Longitude: -171.76}
	pr := PrayerReminder{Prayers: []store.PrayerOffset{{Prayer: "fajr", Offset: 10 * time.Minute}}}
	pl := PrayerPlace{Coordinates: coords, Zone: apia}
	from := localtime.On(2011, time.December, 29, 0, apia)
	to := localtime.On(2012, time.January, 1, 0, apia)
	got, err := PrayerFires(pr, pl, from, to)
	require.NoError(t, err)

	params, err := prayer.MethodParams("")
	require.NoError(t, err)
	fajr := func(day int) time.Time {
		times, err := prayer.Compute(localtime.Date{Year: 2011, Month: time.December, Day: day}, apia, coords, params)
		require.NoError(t, err)
		return times.Fajr
	}
	require.Equal(t, []PrayerFire{
		{At: fajr(29).Add(10 * time.Minute), Prayer: prayer.Fajr, Offset: 10 * time.Minute, Time: fajr(29)},
		{At: localtime.On(2011, time.December, 31, 0, apia).UTC(), Prayer: prayer.Fajr, Offset: 10 * time.Minute},
		{At: fajr(31).Add(10 * time.Minute), Prayer: prayer.Fajr, Offset: 10 * time.Minute, Time: fajr(31)},
	}, got)

	pl.Method = "no_such_method"
	got, err = PrayerFires(pr, pl, from, to)
	require.ErrorContains(t, err, "method")
	require.Empty(t, got)
}
