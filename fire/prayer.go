package fire

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"

	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/metrics"
	"github.com/chime-dev/chime/prayer"
	"github.com/chime-dev/chime/recurrence"
	"github.com/chime-dev/chime/store"
)

// prayerSource is one location of a prayer reminder, with what its times
// are computed from.
type prayerSource struct {
	Src              Source `gorm:"embedded"`
	Prayers          string
	Method           string
	Madhab           string
	HighLatitudeRule string
	Latitude         *float64
	Longitude        *float64
	Elevation        *float64
	// The location's override of the convention; "" is none.
	LocMethod, LocMadhab, LocHighLatitudeRule string
}

// rowKey finds the timetable row that replaces a computed prayer time.
type rowKey struct {
	reminder, location int64
	prayer             string
	date               localtime.Date
}

// prayerInstants puts the instants of prayer reminders: for each location
// of the reminder, its PrayerFires, with the dated rows of the app's
// timetable reminder named for a prayer (key "fajr") at that location
// replacing the computed times.
func prayerInstants(ctx context.Context, db *gorm.DB, log *slog.Logger, scope func(*gorm.DB) *gorm.DB, reminder int64,
	lo, hi time.Time, span func(Source) (from, to time.Time), days *dayRules, put func(Instant)) error {
	var srcs []prayerSource
	err := scope(db.Table("reminder_locations AS src")).
		Select("src.reminder_id, src.location_id, r.created_at, r.prayers, r.method, r.madhab, r.high_latitude_rule, "+
			"l.latitude, l.longitude, l.elevation, l.method AS loc_method, l.madhab AS loc_madhab, "+
			"l.high_latitude_rule AS loc_high_latitude_rule, "+sourceCols).
		Joins("JOIN locations l ON l.id = src.location_id").
		Where("r.kind = ?", store.KindPrayer).
		Scan(&srcs).Error
	if err != nil {
		return fmt.Errorf("load prayer reminders: %w", err)
	}
	if len(srcs) == 0 {
		return nil
	}
	rows, err := prayerRows(ctx, db, reminder, lo, hi)
	if err != nil {
		return err
	}
	skip := func(ps prayerSource, reason string, err error) {
		log.Warn("skip prayer reminder at location", "reminder", ps.Src.ReminderID, "location", ps.Src.LocationID, "reason", reason, "err", err)
		metrics.PrayerSkipped(reason)
	}
	for _, ps := range srcs {
		loc, err := localtime.LoadZone(ps.Src.Zone)
		if err != nil {
			skip(ps, "zone", err)
			continue
		}
		if ps.Latitude == nil || ps.Longitude == nil {
			// The API refuses such a location for a prayer reminder; its
			// coordinates were removed since.
			skip(ps, "no_coordinates", nil)
			continue
		}
		pr := PrayerReminder{Method: ps.Method, Madhab: ps.Madhab, HighLatitudeRule: ps.HighLatitudeRule}
		pl := PrayerPlace{
			Coordinates: prayer.Coordinates{Latitude: *ps.Latitude, Longitude: *ps.Longitude},
			Zone:        loc,
			Method:      ps.LocMethod, Madhab: ps.LocMadhab, HighLatitudeRule: ps.LocHighLatitudeRule,
			Row: func(p prayer.Prayer, d localtime.Date) (int, bool) {
				sec, ok := rows[rowKey{ps.Src.ReminderID, ps.Src.LocationID, string(p), d}]
				return sec, ok
			},
		}
		if ps.Elevation != nil {
			pl.Coordinates.Elevation = *ps.Elevation
		}
		if _, err := PrayerConvention(pr, pl); err != nil {
			skip(ps, "convention", err)
			continue
		}
		if pr.Prayers, err = store.ParsePrayers(ps.Prayers); err != nil {
			skip(ps, "prayers", err)
			continue
		}
		if pr.Days = days.match(ps.Src, loc); pr.Days == nil {
			continue
		}
		from, to := span(ps.Src)
		fires, err := PrayerFires(pr, pl, from, to)
		if err != nil {
			skip(ps, "compute", err)
		}
		for _, f := range fires {
			in := Instant{Source: ps.Src, At: f.At, Prayer: string(f.Prayer), FromTimetable: f.FromTimetable}
			if !f.Time.IsZero() {
				wall := f.Time.In(loc)
				in.LocalSec = wall.Hour()*3600 + wall.Minute()*60 + wall.Second()
			}
			put(in)
		}
	}
	return nil
}

// PrayerReminder is what of a prayer reminder its fire instants at a place
// are computed from.
type PrayerReminder struct {
	Prayers []store.PrayerOffset
	// The reminder's convention; "" is package prayer's default.
	Method, Madhab, HighLatitudeRule string
	// Days is whether the reminder's recurrence names a local date of the
	// place (counted from
	// RecurrenceAnchor); nil is every date.
	Days func(localtime.Date) bool
}

// PrayerPlace is where a prayer reminder fires: a location's coordinates,
// zone and override of the convention.
type PrayerPlace struct {
	Coordinates prayer.Coordinates
	Zone        *time.Location
	// The location's override of the convention; "" is none.
	Method, Madhab, HighLatitudeRule string
	// Row, when set, is the local time of the timetable row that replaces
	// a computed prayer time on a date, if there is one.
	Row func(p prayer.Prayer, d localtime.Date) (localSec int, ok bool)
}

// PrayerFire is one fire instant of a prayer reminder at a place.
type PrayerFire struct {
	At     time.Time // UTC
	Prayer prayer.Prayer
	Offset time.Duration
	// Time is the prayer's own time, before its offset; zero on a date
	// the zone skips whole.
	Time time.Time
	// FromTimetable is whether Time is a timetable row's rather than
	// computed.
	FromTimetable bool
}

// PrayerConvention is the parameters a prayer reminder's times at a place
// are computed by: the location's override of each of the three names
// where it has one, the reminder's where not.
func PrayerConvention(r PrayerReminder, pl PrayerPlace) (prayer.Params, error) {
	p, err := prayer.MethodParams(cmp.Or(pl.Method, r.Method))
	if err == nil {
		p.Madhab, err = prayer.ParseMadhab(cmp.Or(pl.Madhab, r.Madhab))
	}
	if err == nil {
		p.HighLatitudeRule, err = prayer.ParseHighLatitudeRule(cmp.Or(pl.HighLatitudeRule, r.HighLatitudeRule))
	}
	if err == nil {
		err = p.Validate()
	}
	if err != nil {
		return prayer.Params{}, err // a *prayer.Error, naming the field
	}
	return p, nil
}

// PrayerFires returns the fire instants in (from, to] of a prayer reminder
// at a place, in order of date and then of r.Prayers: on each local date
// r.Days names, each prayer's time plus its offset. The time is pl.Row's
// where it has one and package prayer's computation by PrayerConvention
// otherwise. On a date the zone skips whole every prayer of that date
// fires at the first instant of the next day. Two prayers that fire at
// the same instant fire once, as the first.
//
// A convention that cannot be used is an error with no fires. A date whose
// times cannot be computed gives none of its fires from the first prayer
// that needs computing; the others are returned with the first such error.
func PrayerFires(r PrayerReminder, pl PrayerPlace, from, to time.Time) ([]PrayerFire, error) {
	p, err := PrayerConvention(r, pl)
	if err != nil {
		return nil, err
	}
	days := r.Days
	if days == nil {
		days = everyDay
	}
	loc := pl.Zone
	var out []PrayerFire
	var failed error
	// A date's times run from its fajr to the next night's last third,
	// and offsets move them up to MaxPrayerOffset either way.
	seen := map[time.Time]bool{}
	for _, d := range localtime.Dates(from.Add(-24*time.Hour-store.MaxPrayerOffset), to.Add(store.MaxPrayerOffset), loc) {
		if !days(d) {
			continue
		}
		skipped := localtime.Skipped(d, loc)
		var times prayer.Times
		computed := false
		for _, po := range r.Prayers {
			f := PrayerFire{Prayer: prayer.Prayer(po.Prayer), Offset: po.Offset}
			var at time.Time
			if sec, ok := rowOf(pl, f.Prayer, d); ok {
				at, f.FromTimetable = localtime.On(d.Year, d.Month, d.Day, localtime.Of(sec), loc), true
			} else if !skipped {
				if !computed {
					times, err = prayer.Compute(d, loc, pl.Coordinates, p)
					computed = true
				}
				if err != nil {
					if failed == nil {
						failed = fmt.Errorf("compute %s: %w", d, err)
					}
					break
				}
				at = times.Of(f.Prayer)
			}
			if skipped {
				// No local time of that date exists to offset from.
				at = localtime.On(d.Year, d.Month, d.Day, 0, loc)
			} else {
				f.Time = at.UTC()
				at = at.Add(po.Offset)
			}
			f.At = at.UTC()
			if f.At.After(from) && !f.At.After(to) && !seen[f.At] {
				seen[f.At] = true
				out = append(out, f)
			}
		}
	}
	return out, failed
}

func rowOf(pl PrayerPlace, p prayer.Prayer, d localtime.Date) (int, bool) {
	if pl.Row == nil {
		return 0, false
	}
	return pl.Row(p, d)
}

// RecurrenceAnchor is the date rule counts from at a place in zone loc:
// the local date of startsAt there when the rule depends on its start,
// and the zero date (ignored by the rule) otherwise.
func RecurrenceAnchor(rule recurrence.Rule, startsAt *time.Time, loc *time.Location) localtime.Date {
	if startsAt == nil || !rule.NeedsAnchor() {
		return localtime.Date{}
	}
	return localtime.DateOf(*startsAt, loc)
}

// prayerRows returns the local times of the timetable rows that replace
// computed prayer times: rows of the app's timetable reminder whose key is
// a prayer's name, at a location of a prayer reminder, on the dates that
// can hold an instant of [lo, hi] in any zone.
func prayerRows(ctx context.Context, db *gorm.DB, reminder int64, lo, hi time.Time) (map[rowKey]int, error) {
	names := make([]string, len(prayer.Prayers))
	for i, p := range prayer.Prayers {
		names[i] = string(p)
	}
	var rows []struct {
		ReminderID, LocationID int64
		Prayer, Date           string
		LocalSec               int
	}
	q := db.WithContext(ctx).Table("dated_times AS dt").
		Select("pr.id AS reminder_id, dt.location_id, tr.`key` AS prayer, dt.date, dt.local_sec").
		Joins("JOIN reminders tr ON tr.id = dt.reminder_id").
		Joins("JOIN reminders pr ON pr.app_id = tr.app_id").
		Joins("JOIN reminder_locations rl ON rl.reminder_id = pr.id AND rl.location_id = dt.location_id").
		Where("tr.kind = ? AND tr.`key` IN ? AND pr.kind = ? AND pr.paused = ?", store.KindTimetable, names, store.KindPrayer, false).
		Where("dt.date BETWEEN ? AND ?", lo.Add(-48*time.Hour).Format(time.DateOnly), hi.Add(24*time.Hour+store.MaxPrayerOffset).Format(time.DateOnly))
	if reminder != 0 {
		q = q.Where("pr.id = ?", reminder)
	}
	if err := q.Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("load prayer timetable rows: %w", err)
	}
	out := make(map[rowKey]int, len(rows))
	for _, r := range rows {
		d, err := localtime.ParseDate(r.Date)
		if err != nil {
			continue
		}
		out[rowKey{r.ReminderID, r.LocationID, r.Prayer, d}] = r.LocalSec
	}
	return out, nil
}
