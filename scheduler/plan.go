package scheduler

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/chime-dev/chime/fire"
	"github.com/chime-dev/chime/metrics"
	"github.com/chime-dev/chime/store"
)

type occKey struct {
	reminder, location int64
	fireAt             int64 // Unix milliseconds
	event              int64
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
func (w planWindow) bounds(src fire.Source) (from, to time.Time) {
	from = w.now.Add(-src.Grace())
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
func (w planWindow) occurrence(src fire.Source, at time.Time, event int64, prayer string) store.Occurrence {
	missAt := at.Add(src.Grace())
	o := store.Occurrence{
		ReminderID: src.ReminderID, LocationID: src.LocationID, FireAt: at, EventID: event, Prayer: prayer,
		ExpiresAt: at.Add(src.ValidFor()), MissAt: &missAt, State: store.OccScheduled,
	}
	if w.now.After(missAt) {
		o.State = store.OccMissed
		o.DoneAt = &w.now
	}
	return o
}

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
		// Test sends are fired as they are; no instant of the plan is theirs.
		Where("fire_at > ? AND state IN ? AND test_user = ''", oldest.Add(-time.Second), []string{store.OccScheduled, store.OccCanceled}).
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
		metrics.Missed(missed)
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

// wanted computes every occurrence the reminders produce in w, and the
// oldest instant it considered.
func (s *Scheduler) wanted(ctx context.Context, w planWindow) (map[occKey]store.Occurrence, time.Time, error) {
	want := map[occKey]store.Occurrence{}
	oldest := w.now
	// No source looks further back than the longest validity window (grace
	// is at most validity), or than the mark after an outage; timetable rows
	// and events older than that are not read.
	var longest sql.NullInt64
	if err := s.db.WithContext(ctx).Model(&store.Reminder{}).Where("paused = ?", false).
		Select("MAX(valid_for_s)").Row().Scan(&longest); err != nil {
		return nil, oldest, fmt.Errorf("plan: longest validity: %w", err)
	}
	lo := w.now.Add(-time.Duration(longest.Int64) * time.Second)
	if !w.mark.IsZero() && w.mark.Before(lo) {
		lo = w.mark
	}
	lo = latest(lo, w.floor)
	span := func(src fire.Source) (time.Time, time.Time) {
		from, to := w.bounds(src)
		if from.Before(oldest) {
			oldest = from
		}
		return from, to
	}
	err := fire.Instants(ctx, s.db, s.log, 0, lo, w.to, span, func(in fire.Instant) {
		want[occKey{in.ReminderID, in.LocationID, in.At.UnixMilli(), in.EventID}] = w.occurrence(in.Source, in.At, in.EventID, in.Prayer)
	})
	if err != nil {
		return nil, oldest, fmt.Errorf("plan: %w", err)
	}
	return want, oldest, nil
}
