package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/content"
	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/prayer"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/scheduler"
	"github.com/chime-dev/chime/store"
)

type coords struct{ lat, lon float64 }

// wantPrayerOccurrences computes with package prayer the instants a prayer
// reminder's planner pass must produce at each location over (from, to].
func wantPrayerOccurrences(t *testing.T, zones []string, at []coords, method string, p prayer.Prayer, off time.Duration,
	from, to time.Time, match func(localtime.Date) bool) map[int]map[string]bool {
	t.Helper()
	out := map[int]map[string]bool{}
	params, err := prayer.MethodParams(method)
	require.NoError(t, err)
	for i, z := range zones {
		loc, _ := time.LoadLocation(z)
		out[i] = map[string]bool{}
		for _, d := range localtime.Dates(from.Add(-48*time.Hour), to.Add(24*time.Hour), loc) {
			if match != nil && !match(d) {
				continue
			}
			times, err := prayer.Compute(d, loc, prayer.Coordinates{Latitude: at[i].lat, Longitude: at[i].lon}, params)
			require.NoError(t, err)
			if inst := times.Of(p).Add(off); inst.After(from) && !inst.After(to) {
				out[i][inst.UTC().Format(time.RFC3339)] = true
			}
		}
	}
	return out
}

func occurrencesAt(t *testing.T, b *bundle, locs []int64) map[int]map[string]bool {
	t.Helper()
	got := map[int]map[string]bool{}
	for i, l := range locs {
		got[i] = map[string]bool{}
		var occ []store.Occurrence
		require.NoError(t, b.env.DB.Where("location_id = ? AND state = ?", l, store.OccScheduled).Find(&occ).Error)
		for _, o := range occ {
			got[i][o.FireAt.UTC().Format(time.RFC3339)] = true
		}
	}
	return got
}

// The planner turns a prayer reminder into one occurrence per prayer per
// local day within its horizon at each of its locations, at the instant
// package prayer computes plus the offset (fajr ten minutes early over
// Jakarta, Riyadh, London across its clock change, and Tromsø at 69.6°
// north); a location whose coordinates are gone is
// skipped (counted in chime_prayer_skipped_total) and the others planned.
func TestPlanPrayerReminder(t *testing.T) {
	now := time.Date(2026, 3, 28, 0, 0, 0, 0, time.UTC)
	b := setupCfg(t, now, scheduler.Config{Horizon: 72 * time.Hour})
	zones := []string{"Asia/Jakarta", "Asia/Riyadh", "Europe/London", "Europe/Oslo", "Asia/Tokyo"}
	at := []coords{{-6.2088, 106.8456}, {24.7136, 46.6753}, {51.5074, -0.1278}, {69.6492, 18.9553}, {}}
	r, locs := b.kindReminder(t, store.Reminder{Kind: store.KindPrayer, Prayers: "fajr:-600", Method: "muslim_world_league"}, zones, 0)
	for i, l := range locs[:4] {
		require.NoError(t, b.env.DB.Model(&store.Location{}).Where("id = ?", l).Updates(map[string]any{"latitude": at[i].lat, "longitude": at[i].lon}).Error)
	}
	ctx := context.Background()
	require.NoError(t, b.s.Plan(ctx))
	require.NoError(t, b.s.Plan(ctx), "planning twice adds nothing")
	want := wantPrayerOccurrences(t, zones[:4], at, "muslim_world_league", prayer.Fajr, -10*time.Minute, now.Add(-r.Grace()), now.Add(72*time.Hour), nil)
	want[4] = map[string]bool{} // Tokyo has no coordinates: skipped
	got := occurrencesAt(t, b, locs)
	require.Equal(t, want, got)
	for i := range 4 {
		require.Len(t, got[i], 3, zones[i])
	}
}

// Jumu'ah, dhuhr thirty minutes early with FREQ=WEEKLY;BYDAY=FR, is
// planned on Fridays only, on each location's calendar: Auckland's Friday
// begins 13 hours before London's, Honolulu's 10 hours after.
func TestPlanJumuahOnlyOnFridays(t *testing.T) {
	now := time.Date(2026, 3, 23, 0, 0, 0, 0, time.UTC) // a Monday
	b := setupCfg(t, now, scheduler.Config{Horizon: 9 * 24 * time.Hour})
	zones := []string{"Pacific/Auckland", "Europe/London", "Pacific/Honolulu"}
	at := []coords{{-36.8485, 174.7633}, {51.5074, -0.1278}, {21.3069, -157.8583}}
	_, locs := b.kindReminder(t, store.Reminder{Kind: store.KindPrayer, Prayers: "dhuhr:-1800", Recurrence: "FREQ=WEEKLY;BYDAY=FR"}, zones, 0)
	for i, l := range locs {
		require.NoError(t, b.env.DB.Model(&store.Location{}).Where("id = ?", l).Updates(map[string]any{"latitude": at[i].lat, "longitude": at[i].lon}).Error)
	}
	require.NoError(t, b.s.Plan(context.Background()))
	fridays := func(d localtime.Date) bool { return d.Midnight().Weekday() == time.Friday }
	want := wantPrayerOccurrences(t, zones, at, "", prayer.Dhuhr, -30*time.Minute, now.Add(-10*time.Minute), now.Add(9*24*time.Hour), fridays)
	got := occurrencesAt(t, b, locs)
	require.Equal(t, want, got)
	for i, z := range zones {
		require.Len(t, got[i], 1, z)
		for s := range got[i] {
			inst, _ := time.Parse(time.RFC3339, s)
			loc, _ := time.LoadLocation(z)
			require.Equal(t, time.Friday, inst.In(loc).Weekday(), z)
		}
	}
}

// A prayer reminder's occurrences name their prayer, and the group tasks
// carry it to the templates: one reminder for fajr ten minutes early and
// maghrib on time, titled "{{.Prayer | title}} in ...", is planned over
// Riyadh with subscribers and fired. Checks: every occurrence names the
// prayer its instant was computed for, and a fired fajr task composes to
// "Fajr in 10 minutes".
func TestPrayerOccurrencesNameTheirPrayer(t *testing.T) {
	now := time.Date(2026, 3, 28, 0, 0, 0, 0, time.UTC)
	b := setupCfg(t, now, scheduler.Config{Horizon: 26 * time.Hour})
	r, locs := b.kindReminder(t, store.Reminder{Kind: store.KindPrayer, Prayers: "fajr:-600,maghrib:0"}, []string{"Asia/Riyadh"}, 5)
	require.NoError(t, b.env.DB.Model(&store.Reminder{ID: r.ID}).Update("title", `{{.Prayer | title}} in {{if eq .Prayer "fajr"}}10 minutes{{else}}a moment{{end}}`).Error)
	require.NoError(t, b.env.DB.Model(&store.Location{}).Where("id = ?", locs[0]).Updates(map[string]any{"latitude": 24.7136, "longitude": 46.6753}).Error)
	ctx := context.Background()
	require.NoError(t, b.s.Plan(ctx))

	params, err := prayer.MethodParams(string(prayer.DefaultMethod))
	require.NoError(t, err)
	riyadh, _ := time.LoadLocation("Asia/Riyadh")
	var fajr store.Occurrence
	occ := b.occurrences(t)
	require.NotEmpty(t, occ)
	for _, o := range occ {
		d := prayer.DateOf(o.FireAt.Add(10 * time.Minute).In(riyadh))
		times, err := prayer.Compute(d, riyadh, prayer.Coordinates{Latitude: 24.7136, Longitude: 46.6753}, params)
		require.NoError(t, err)
		switch {
		case o.FireAt.Equal(times.Fajr.Add(-10 * time.Minute)):
			require.Equal(t, "fajr", o.Prayer)
			if fajr.ID == 0 && o.State == store.OccScheduled {
				fajr = o
			}
		case o.FireAt.Equal(times.Maghrib):
			require.Equal(t, "maghrib", o.Prayer)
		default:
			t.Fatalf("occurrence at %s is neither fajr nor maghrib", o.FireAt)
		}
	}
	require.NotZero(t, fajr.ID, "a fajr occurrence is planned")
	require.NoError(t, b.s.Fire(ctx, fajr))
	tasks, err := b.insp.ListPendingTasks(b.env.Queue)
	require.NoError(t, err)
	require.NotEmpty(t, tasks)
	for _, task := range tasks {
		tk, err := queue.Decode(task.Type, task.Payload)
		require.NoError(t, err)
		require.NotEmpty(t, tk.Parts)
		for _, p := range tk.Parts {
			require.Equal(t, "fajr", p.Prayer)
			m, err := content.NewComposer(content.Config{}).Compose(&p.Message, content.Device{})
			require.NoError(t, err)
			require.Equal(t, "Fajr in 10 minutes", m.Title)
		}
	}
}
