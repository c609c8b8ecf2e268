package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/store"
)

type occKey struct {
	reminder, location int64
	fireAt             int64 // Unix milliseconds
	event              int64
}

// source is what every kind of reminder time has in common: the reminder's
// windows and the row's own creation, which bounds catch-up (a time added
// today does not make yesterday's instant "missed").
type source struct {
	ReminderID int64
	LocationID int64
	Zone       string
	ValidForS  int64
	GraceS     int64
	StartsAt   *time.Time
	EndsAt     *time.Time
	CreatedAt  time.Time
}

func (r source) validFor() time.Duration { return time.Duration(r.ValidForS) * time.Second }

func (r source) grace() time.Duration {
	return store.Reminder{ValidForS: r.ValidForS, GraceS: r.GraceS}.Grace()
}

// planWindow is the span of instants one pass plans.
type planWindow struct {
	now, to time.Time
	// mark is where the last successful pass planned up to (zero before the
	// first); instants between it and now were never planned if the
	// coordinator was down longer than the horizon.
	mark time.Time
	// floor bounds catch-up: nothing older than MaxCatchUp is planned.
	floor time.Time
}

// bounds returns the instants src may produce in this pass.
func (w planWindow) bounds(src source) (from, to time.Time) {
	from = w.now.Add(-src.grace())
	if !w.mark.IsZero() && w.mark.Before(from) {
		from = w.mark
	}
	from = latest(from, w.floor, src.CreatedAt.Add(-time.Second))
	if src.StartsAt != nil {
		from = latest(from, src.StartsAt.Add(-time.Millisecond))
	}
	to = w.to
	if src.EndsAt != nil && src.EndsAt.Before(to) {
		to = *src.EndsAt
	}
	return from, to
}

func latest(t time.Time, more ...time.Time) time.Time {
	for _, m := range more {
		if m.After(t) {
			t = m
		}
	}
	return t
}

// occurrence is the row src's instant at becomes: scheduled, or missed if
// its grace window is already over.
func (w planWindow) occurrence(src source, at time.Time, event int64) store.Occurrence {
	missAt := at.Add(src.grace())
	o := store.Occurrence{
		ReminderID: src.ReminderID, LocationID: src.LocationID, FireAt: at, EventID: event,
		ExpiresAt: at.Add(src.validFor()), MissAt: &missAt, State: store.OccScheduled,
	}
	if w.now.After(missAt) {
		o.State = store.OccMissed
		o.DoneAt = &w.now
	}
	return o
}

const reminderCols = "r.valid_for_s, r.grace_s, r.starts_at, r.ends_at"

// Plan brings the occurrences in line with the reminders: it adds the
// instants of the coming Horizon, catches up on instants that passed while no
// coordinator ran (scheduled if their grace window is still open, recorded as
// missed if not), revives instants that were canceled and are wanted again,
// and cancels scheduled instants nothing produces any more.
func (s *Scheduler) Plan(ctx context.Context) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	now := s.clock.Now()
	w := planWindow{now: now, to: now.Add(s.cfg.Horizon), floor: now.Add(-s.cfg.MaxCatchUp)}
	var mark store.PlannerMark
	switch err := s.db.WithContext(ctx).First(&mark, 1).Error; {
	case err == nil:
		w.mark = mark.PlannedUntil
	case !errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("plan: load mark: %w", err)
	}
	want, oldest, err := s.wanted(ctx, w)
	if err != nil {
		return err
	}

	var existing []store.Occurrence
	err = s.db.WithContext(ctx).
		Select("id", "reminder_id", "location_id", "fire_at", "event_id", "expires_at", "miss_at", "state").
		Where("fire_at > ? AND state IN ?", oldest.Add(-time.Second), []string{store.OccScheduled, store.OccCanceled}).
		Find(&existing).Error
	if err != nil {
		return fmt.Errorf("plan: load occurrences: %w", err)
	}
	seen := map[occKey]bool{}
	var cancelIDs, reviveIDs []int64
	for _, o := range existing {
		k := occKey{o.ReminderID, o.LocationID, o.FireAt.UnixMilli(), o.EventID}
		seen[k] = true
		wo, wanted := want[k]
		switch {
		case o.State == store.OccScheduled && !wanted && missAt(o).Before(now):
			// Out of the planning window because its grace passed while it
			// waited: the firer records it as missed.
		case o.State == store.OccScheduled && !wanted:
			cancelIDs = append(cancelIDs, o.ID)
		case o.State == store.OccCanceled && wanted && o.FireAt.After(now):
			reviveIDs = append(reviveIDs, o.ID)
		case wanted && (!o.ExpiresAt.Equal(wo.ExpiresAt) || !missAt(o).Equal(*wo.MissAt)):
			if err := s.db.WithContext(ctx).Model(&store.Occurrence{}).Where("id = ? AND state = ?", o.ID, o.State).
				Updates(map[string]any{"expires_at": wo.ExpiresAt, "miss_at": *wo.MissAt}).Error; err != nil {
				return fmt.Errorf("plan: update windows: %w", err)
			}
		}
	}
	var add []store.Occurrence
	missed := 0
	for k, o := range want {
		if !seen[k] {
			add = append(add, o)
			if o.State == store.OccMissed {
				missed++
			}
		}
	}
	if len(add) > 0 {
		err := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).CreateInBatches(&add, 500).Error
		if err != nil {
			return fmt.Errorf("plan: add occurrences: %w", err)
		}
	}
	if len(cancelIDs) > 0 {
		err := s.db.WithContext(ctx).Model(&store.Occurrence{}).Where("id IN ? AND state = ?", cancelIDs, store.OccScheduled).
			Update("state", store.OccCanceled).Error
		if err != nil {
			return fmt.Errorf("plan: cancel occurrences: %w", err)
		}
		// Runs prepared for them will not be needed. Only occurrences the
		// update above did cancel: one may have fired in between.
		canceled := s.db.Model(&store.Occurrence{}).Select("id").Where("id IN ? AND state = ?", cancelIDs, store.OccCanceled)
		err = s.db.WithContext(ctx).Where("occurrence_id IN (?) AND state = ?", canceled, store.RunPending).
			Delete(&store.GroupRun{}).Error
		if err != nil {
			return fmt.Errorf("plan: cancel occurrences: %w", err)
		}
	}
	if len(reviveIDs) > 0 {
		err := s.db.WithContext(ctx).Model(&store.Occurrence{}).Where("id IN ? AND state = ?", reviveIDs, store.OccCanceled).
			Update("state", store.OccScheduled).Error
		if err != nil {
			return fmt.Errorf("plan: revive occurrences: %w", err)
		}
	}
	mark = store.PlannerMark{ID: 1, PlannedUntil: w.to}
	if err := s.db.WithContext(ctx).Save(&mark).Error; err != nil {
		return fmt.Errorf("plan: save mark: %w", err)
	}
	if len(add)+len(cancelIDs)+len(reviveIDs) > 0 {
		s.log.Info("planned", "added", len(add)-missed, "missed", missed, "canceled", len(cancelIDs), "revived", len(reviveIDs))
	}
	return nil
}

func missAt(o store.Occurrence) time.Time {
	if o.MissAt != nil {
		return *o.MissAt
	}
	return o.ExpiresAt
}

// wanted computes every occurrence the reminders produce in w, from the four
// kinds of reminder time, and the oldest instant it considered.
func (s *Scheduler) wanted(ctx context.Context, w planWindow) (map[occKey]store.Occurrence, time.Time, error) {
	want := map[occKey]store.Occurrence{}
	oldest := w.now
	put := func(src source, at time.Time, event int64) {
		want[occKey{src.ReminderID, src.LocationID, at.UnixMilli(), event}] = w.occurrence(src, at, event)
	}
	span := func(src source) (time.Time, time.Time) {
		from, to := w.bounds(src)
		if from.Before(oldest) {
			oldest = from
		}
		return from, to
	}
	zone := func(src source) *time.Location {
		loc, err := localtime.LoadZone(src.Zone)
		if err != nil {
			s.log.Warn("plan: skip reminder time", "reminder", src.ReminderID, "location", src.LocationID, "err", err)
			return nil
		}
		return loc
	}
	db := s.db.WithContext(ctx)

	// Daily local times.
	var daily []struct {
		Src      source `gorm:"embedded"`
		LocalSec int
	}
	err := db.Table("reminder_times AS rt").
		Select("rt.reminder_id, rt.location_id, rt.local_sec, l.zone, rt.created_at, "+reminderCols).
		Joins("JOIN reminders r ON r.id = rt.reminder_id").
		Joins("JOIN locations l ON l.id = rt.location_id").
		Where("r.paused = ? AND r.kind = ?", false, store.KindDaily).
		Scan(&daily).Error
	if err != nil {
		return nil, oldest, fmt.Errorf("plan: load reminder times: %w", err)
	}
	for _, rt := range daily {
		loc := zone(rt.Src)
		if loc == nil {
			continue
		}
		from, to := span(rt.Src)
		for _, at := range localtime.Between(from, to, localtime.Of(rt.LocalSec), loc) {
			put(rt.Src, at, 0)
		}
	}

	// Timetables: the dates that can hold an instant of the window in any
	// zone (UTC-12 to UTC+14).
	lo := w.now.Add(-s.cfg.MaxCatchUp).Add(-14 * time.Hour).Format(time.DateOnly)
	hi := w.to.Add(14 * time.Hour).Format(time.DateOnly)
	var dated []struct {
		Src      source `gorm:"embedded"`
		Date     string
		LocalSec int
	}
	err = db.Table("dated_times AS dt").
		Select("dt.reminder_id, dt.location_id, dt.date, dt.local_sec, l.zone, dt.created_at, "+reminderCols).
		Joins("JOIN reminders r ON r.id = dt.reminder_id").
		Joins("JOIN locations l ON l.id = dt.location_id").
		Where("r.paused = ? AND r.kind = ? AND dt.date BETWEEN ? AND ?", false, store.KindTimetable, lo, hi).
		Scan(&dated).Error
	if err != nil {
		return nil, oldest, fmt.Errorf("plan: load timetables: %w", err)
	}
	for _, dt := range dated {
		loc := zone(dt.Src)
		if loc == nil {
			continue
		}
		day, err := time.Parse(time.DateOnly, dt.Date)
		if err != nil {
			s.log.Warn("plan: skip timetable row", "reminder", dt.Src.ReminderID, "date", dt.Date, "err", err)
			continue
		}
		at := localtime.On(day.Year(), day.Month(), day.Day(), localtime.Of(dt.LocalSec), loc)
		if from, to := span(dt.Src); at.After(from) && !at.After(to) {
			put(dt.Src, at, 0)
		}
	}

	// One-off instants, at every location of the reminder.
	var once []struct {
		Src     source `gorm:"embedded"`
		At      time.Time
		Offsets string
	}
	err = db.Table("reminders AS r").
		Select("r.id AS reminder_id, rl.location_id, l.zone, r.at, r.offsets, r.created_at, "+reminderCols).
		Joins("JOIN reminder_locations rl ON rl.reminder_id = r.id").
		Joins("JOIN locations l ON l.id = rl.location_id").
		Where("r.paused = ? AND r.kind = ? AND r.at IS NOT NULL", false, store.KindOnce).
		Scan(&once).Error
	if err != nil {
		return nil, oldest, fmt.Errorf("plan: load one-off reminders: %w", err)
	}
	for _, o := range once {
		offsets, err := store.ParseOffsets(o.Offsets)
		if err != nil {
			s.log.Warn("plan: skip one-off reminder", "reminder", o.Src.ReminderID, "err", err)
			continue
		}
		from, to := span(o.Src)
		for _, off := range offsets {
			if at := o.At.Add(-off); at.After(from) && !at.After(to) {
				put(o.Src, at, 0)
			}
		}
	}

	// Events posted on topics, at every location of the topic.
	var events []struct {
		Src     source `gorm:"embedded"`
		EventID int64
		FireAt  time.Time
	}
	err = db.Table("events AS e").
		Select("e.id AS event_id, e.fire_at, e.reminder_id, rl.location_id, l.zone, e.created_at, "+reminderCols).
		Joins("JOIN reminders r ON r.id = e.reminder_id").
		Joins("JOIN reminder_locations rl ON rl.reminder_id = r.id").
		Joins("JOIN locations l ON l.id = rl.location_id").
		Where("r.paused = ? AND e.canceled = ? AND e.fire_at BETWEEN ? AND ?", false, false, w.floor, w.to).
		Scan(&events).Error
	if err != nil {
		return nil, oldest, fmt.Errorf("plan: load events: %w", err)
	}
	for _, e := range events {
		if from, to := span(e.Src); e.FireAt.After(from) && !e.FireAt.After(to) {
			put(e.Src, e.FireAt, e.EventID)
		}
	}
	return want, oldest, nil
}
