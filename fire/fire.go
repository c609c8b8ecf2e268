package fire

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"

	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/recurrence"
	"github.com/chime-dev/chime/store"
	"github.com/chime-dev/chime/userzone"
)

// Source is what every kind of reminder time has in common: where it fires,
// the reminder's windows, and the row's own creation, which bounds catch-up
// (a time added today does not make yesterday's instant "missed").
type Source struct {
	ReminderID int64
	LocationID int64
	Location   string // the location's name
	Zone       string
	ValidForS  int64
	GraceS     int64
	StartsAt   *time.Time
	EndsAt     *time.Time
	CreatedAt  time.Time
	// Recurrence is the reminder's RRULE (daily and prayer kinds); empty
	// means every day.
	Recurrence string
}

func (r Source) ValidFor() time.Duration { return time.Duration(r.ValidForS) * time.Second }

func (r Source) Grace() time.Duration {
	return store.Reminder{ValidForS: r.ValidForS, GraceS: r.GraceS}.Grace()
}

// Instant is one fire instant of a reminder at a location.
type Instant struct {
	Source
	At      time.Time
	EventID int64 // the event a topic instant fires for
	// LocalSec is the local time of day the reminder names (daily and
	// timetable reminders, and a prayer's time before its offset), or -1
	// for an instant (once and topic).
	LocalSec int
	// Prayer is the prayer a prayer reminder's instant fires for, and
	// FromTimetable whether its time is a timetable row's rather than
	// computed.
	Prayer        string
	FromTimetable bool
}

const sourceCols = "l.name AS location, l.zone, r.valid_for_s, r.grace_s, r.starts_at, r.ends_at, r.recurrence"

// Instants calls put for every instant the unpaused reminders produce (only
// reminder's, if it is not 0), from the five kinds of reminder time, that
// falls in (from, to] of span(src) for its source. lo and hi bound every
// span: timetable rows and events outside them are not read.
func Instants(ctx context.Context, db *gorm.DB, log *slog.Logger, reminder int64, lo, hi time.Time,
	span func(Source) (from, to time.Time), put func(Instant)) error {
	db = db.WithContext(ctx)
	scope := func(q *gorm.DB) *gorm.DB {
		q = q.Joins("JOIN reminders r ON r.id = src.reminder_id").Where("r.paused = ?", false)
		if reminder != 0 {
			q = q.Where("r.id = ?", reminder)
		}
		return q
	}
	zone := func(src Source) *time.Location {
		loc, err := localtime.LoadZone(src.Zone)
		if err != nil {
			log.Warn("skip reminder time", "reminder", src.ReminderID, "location", src.LocationID, "err", err)
			return nil
		}
		return loc
	}
	emit := func(src Source, at time.Time, event int64, localSec int) {
		if from, to := span(src); at.After(from) && !at.After(to) {
			put(Instant{Source: src, At: at, EventID: event, LocalSec: localSec})
		}
	}

	days := newDayRules(log, lo, hi)

	// Daily local times, on the dates of their recurrence.
	var daily []struct {
		Src      Source `gorm:"embedded"`
		LocalSec int
	}
	err := scope(db.Table("reminder_times AS src")).
		Select("src.reminder_id, src.location_id, src.local_sec, src.created_at, "+sourceCols).
		Joins("JOIN locations l ON l.id = src.location_id").
		Where("r.kind = ?", store.KindDaily).
		Scan(&daily).Error
	if err != nil {
		return fmt.Errorf("load reminder times: %w", err)
	}
	for _, rt := range daily {
		dailyInstants(rt.Src, rt.LocalSec, zone, days, span, put)
	}

	// Times of day in each user's own zone: at every managed zone location
	// of the reminder that has subscribers (a zone stops firing when its
	// last user leaves, and starts with its first).
	var zoned []struct {
		Src      Source `gorm:"embedded"`
		LocalSec int
	}
	err = scope(db.Table("zone_times AS src")).
		Select("src.reminder_id, rl.location_id, src.local_sec, src.created_at, "+sourceCols).
		Joins("JOIN reminder_locations rl ON rl.reminder_id = src.reminder_id").
		Joins("JOIN locations l ON l.id = rl.location_id").
		Where("r.kind = ? AND l.app_id = r.app_id AND l.name LIKE ?", store.KindDaily, userzone.Prefix+"%").
		Where("EXISTS (SELECT 1 FROM subscriptions s WHERE s.reminder_id = src.reminder_id AND s.location_id = rl.location_id)").
		Scan(&zoned).Error
	if err != nil {
		return fmt.Errorf("load zone times: %w", err)
	}
	for _, zt := range zoned {
		dailyInstants(zt.Src, zt.LocalSec, zone, days, span, put)
	}

	if err := prayerInstants(ctx, db, log, scope, reminder, lo, hi, span, days, put); err != nil {
		return err
	}

	// Timetables: the dates that can hold an instant of [lo, hi] in any
	// zone (UTC-12 to UTC+14).
	var dated []struct {
		Src      Source `gorm:"embedded"`
		Date     string
		LocalSec int
	}
	err = scope(db.Table("dated_times AS src")).
		Select("src.reminder_id, src.location_id, src.date, src.local_sec, src.created_at, "+sourceCols).
		Joins("JOIN locations l ON l.id = src.location_id").
		Where("r.kind = ? AND src.date BETWEEN ? AND ?", store.KindTimetable,
			lo.Add(-14*time.Hour).Format(time.DateOnly), hi.Add(14*time.Hour).Format(time.DateOnly)).
		Scan(&dated).Error
	if err != nil {
		return fmt.Errorf("load timetables: %w", err)
	}
	for _, dt := range dated {
		loc := zone(dt.Src)
		if loc == nil {
			continue
		}
		day, err := time.Parse(time.DateOnly, dt.Date)
		if err != nil {
			log.Warn("skip timetable row", "reminder", dt.Src.ReminderID, "date", dt.Date, "err", err)
			continue
		}
		emit(dt.Src, localtime.On(day.Year(), day.Month(), day.Day(), localtime.Of(dt.LocalSec), loc), 0, dt.LocalSec)
	}

	// One-off instants, at every location of the reminder; a local one at
	// its wall-clock time in each location's zone.
	var once []struct {
		Src     Source `gorm:"embedded"`
		At      time.Time
		Offsets string
		Local   bool
	}
	err = scope(db.Table("reminder_locations AS src")).
		Select("src.reminder_id, src.location_id, r.at, r.offsets, r.local, r.created_at, "+sourceCols).
		Joins("JOIN locations l ON l.id = src.location_id").
		Where("r.kind = ? AND r.at IS NOT NULL", store.KindOnce).
		Scan(&once).Error
	if err != nil {
		return fmt.Errorf("load one-off reminders: %w", err)
	}
	for _, o := range once {
		offsets, err := store.ParseOffsets(o.Offsets)
		if err != nil {
			log.Warn("skip one-off reminder", "reminder", o.Src.ReminderID, "err", err)
			continue
		}
		at := o.At.UTC()
		if o.Local {
			loc := zone(o.Src)
			if loc == nil {
				continue
			}
			at = LocalAt(at, loc)
		}
		for _, off := range offsets {
			emit(o.Src, at.Add(-off), 0, -1)
		}
	}

	// Events posted on topics, at every location of the topic.
	var events []struct {
		Src     Source `gorm:"embedded"`
		EventID int64
		FireAt  time.Time
	}
	err = scope(db.Table("events AS src")).
		Select("src.id AS event_id, src.fire_at, src.reminder_id, rl.location_id, src.created_at, "+sourceCols).
		Joins("JOIN reminder_locations rl ON rl.reminder_id = src.reminder_id").
		Joins("JOIN locations l ON l.id = rl.location_id").
		Where("src.canceled = ? AND src.fire_at BETWEEN ? AND ?", false, lo, hi).
		Scan(&events).Error
	if err != nil {
		return fmt.Errorf("load events: %w", err)
	}
	for _, e := range events {
		emit(e.Src, e.FireAt.UTC(), e.EventID, -1)
	}
	return nil
}

// dailyInstants puts the instants of a local time of day at src's
// location on the dates of its recurrence.
func dailyInstants(src Source, localSec int, zone func(Source) *time.Location, days *dayRules,
	span func(Source) (from, to time.Time), put func(Instant)) {
	loc := zone(src)
	if loc == nil {
		return
	}
	match := days.match(src, loc)
	if match == nil {
		return
	}
	from, to := span(src)
	last := from
	for _, d := range localtime.Dates(from, to, loc) {
		if !match(d) {
			continue
		}
		// Two dates give one instant when the first is skipped whole
		// and the time is midnight: it fires once.
		at := localtime.On(d.Year, d.Month, d.Day, localtime.Of(localSec), loc)
		if at.After(last) && !at.After(to) {
			put(Instant{Source: src, At: at, LocalSec: localSec})
			last = at
		}
	}
}

// LocalAt is the instant of a local once reminder's wall-clock time wall
// (stored as if it were UTC) in loc, by package localtime's rules for
// skipped and repeated times.
func LocalAt(wall time.Time, loc *time.Location) time.Time {
	y, m, d := wall.Date()
	return localtime.On(y, m, d, localtime.Of(wall.Hour()*3600+wall.Minute()*60+wall.Second()), loc)
}

// dayRules evaluates reminders' recurrences once per reminder and anchor
// date for a pass, over the floating dates that can hold an instant of
// [lo, hi] in any zone (UTC-12 to UTC+14): the dates a rule matches do not
// depend on the zone, and a reminder's anchor (the local date of its
// starts_at) falls on one of three dates across zones.
type dayRules struct {
	log         *slog.Logger
	first, last localtime.Date
	rules       map[string]recurrence.Rule
	dates       map[dayKey]map[localtime.Date]bool
}

type dayKey struct {
	reminder int64
	anchor   localtime.Date
}

func newDayRules(log *slog.Logger, lo, hi time.Time) *dayRules {
	return &dayRules{
		log: log, first: localtime.DateOf(lo, time.UTC).AddDays(-2), last: localtime.DateOf(hi, time.UTC).AddDays(2),
		rules: map[string]recurrence.Rule{}, dates: map[dayKey]map[localtime.Date]bool{},
	}
}

var everyDay = func(localtime.Date) bool { return true }

// match returns whether src fires on a local date in loc, or nil if its
// rule cannot be read (logged: the API refuses such rules, so only a row
// written around it gets here).
func (dr *dayRules) match(src Source, loc *time.Location) func(localtime.Date) bool {
	if src.Recurrence == "" {
		return everyDay
	}
	rule, ok := dr.rules[src.Recurrence]
	if !ok {
		var err error
		if rule, err = recurrence.Parse(src.Recurrence); err != nil {
			dr.log.Warn("skip reminder: recurrence", "reminder", src.ReminderID, "err", err)
			return nil
		}
		dr.rules[src.Recurrence] = rule
	}
	k := dayKey{reminder: src.ReminderID, anchor: RecurrenceAnchor(rule, src.StartsAt, loc)}
	set, ok := dr.dates[k]
	if !ok {
		ds, err := rule.Dates(k.anchor, dr.first, dr.last)
		if err != nil {
			dr.log.Warn("skip reminder: recurrence", "reminder", src.ReminderID, "err", err)
			return nil
		}
		set = make(map[localtime.Date]bool, len(ds))
		for _, d := range ds {
			set[d] = true
		}
		dr.dates[k] = set
	}
	return func(d localtime.Date) bool { return set[d] }
}
