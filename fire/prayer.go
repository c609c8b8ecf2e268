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

// convention is the three names a prayer time's parameters come from.
type convention struct{ method, madhab, rule string }

// prayerInstants puts the instants of prayer reminders: for each location
// of the reminder and each local date its recurrence names, each prayer's
// time plus its offset. The time is the dated row of the app's timetable
// reminder named for the prayer (key "fajr") at that location, when there
// is one, and package prayer's computation otherwise, by the location's
// convention override where it has one and the reminder's where not. On a
// day the zone skips whole every prayer of that date fires at the first
// instant of the next day.
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
	params := map[convention]*prayer.Params{}
	paramsOf := func(c convention) (*prayer.Params, error) {
		if p, ok := params[c]; ok {
			return p, nil
		}
		p, err := prayer.MethodParams(c.method)
		if err == nil {
			p.Madhab, err = prayer.ParseMadhab(c.madhab)
		}
		if err == nil {
			p.HighLatitudeRule, err = prayer.ParseHighLatitudeRule(c.rule)
		}
		if err == nil {
			err = p.Validate()
		}
		if err != nil {
			return nil, err
		}
		params[c] = &p
		return &p, nil
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
		coords := prayer.Coordinates{Latitude: *ps.Latitude, Longitude: *ps.Longitude}
		if ps.Elevation != nil {
			coords.Elevation = *ps.Elevation
		}
		p, err := paramsOf(convention{cmp.Or(ps.LocMethod, ps.Method), cmp.Or(ps.LocMadhab, ps.Madhab), cmp.Or(ps.LocHighLatitudeRule, ps.HighLatitudeRule)})
		if err != nil {
			skip(ps, "convention", err)
			continue
		}
		prayers, err := store.ParsePrayers(ps.Prayers)
		if err != nil {
			skip(ps, "prayers", err)
			continue
		}
		match := days.match(ps.Src, loc)
		if match == nil {
			continue
		}
		from, to := span(ps.Src)
		// A date's times run from its fajr to the next night's last third,
		// and offsets move them up to MaxPrayerOffset either way.
		seen := map[time.Time]bool{}
		for _, d := range localtime.Dates(from.Add(-24*time.Hour-store.MaxPrayerOffset), to.Add(store.MaxPrayerOffset), loc) {
			if !match(d) {
				continue
			}
			skipped := localtime.Skipped(d, loc)
			var times prayer.Times
			computed := false
			for _, po := range prayers {
				in := Instant{Source: ps.Src, Prayer: po.Prayer}
				var at time.Time
				if sec, ok := rows[rowKey{ps.Src.ReminderID, ps.Src.LocationID, po.Prayer, d}]; ok {
					at, in.FromTimetable = localtime.On(d.Year, d.Month, d.Day, localtime.Of(sec), loc), true
				} else if !skipped {
					if !computed {
						times, err = prayer.Compute(d, loc, coords, *p)
						computed = true
					}
					if err != nil {
						skip(ps, "compute", err)
						break
					}
					at = times.Of(prayer.Prayer(po.Prayer))
				}
				if skipped {
					// No local time of that date exists to offset from.
					at = localtime.On(d.Year, d.Month, d.Day, 0, loc)
				} else {
					wall := at.In(loc)
					in.LocalSec = wall.Hour()*3600 + wall.Minute()*60 + wall.Second()
					at = at.Add(po.Offset)
				}
				in.At = at.UTC()
				if in.At.After(from) && !in.At.After(to) && !seen[in.At] {
					seen[in.At] = true
					put(in)
				}
			}
		}
	}
	return nil
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
