package scheduler

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"

	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/store"
)

type occKey struct {
	reminder, location int64
	fireAt             int64 // Unix milliseconds
}

type timeRow struct {
	ReminderID int64
	LocationID int64
	LocalSec   int
	Zone       string
	ValidForS  int64
	StartsAt   *time.Time
	EndsAt     *time.Time
	CreatedAt  time.Time
}

// Plan brings the scheduled occurrences in line with the reminder times:
// it adds the instants of the coming Horizon (and of the past validity
// window), revives instants that were canceled and are wanted again, and
// cancels scheduled instants no reminder time produces any more.
func (s *Scheduler) Plan(ctx context.Context) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	now := s.clock.Now()
	var rows []timeRow
	err := s.db.WithContext(ctx).Table("reminder_times AS rt").
		Select("rt.reminder_id, rt.location_id, rt.local_sec, l.zone, r.valid_for_s, r.starts_at, r.ends_at, rt.created_at").
		Joins("JOIN reminders r ON r.id = rt.reminder_id").
		Joins("JOIN locations l ON l.id = rt.location_id").
		Where("r.paused = ?", false).
		Scan(&rows).Error
	if err != nil {
		return fmt.Errorf("plan: load reminder times: %w", err)
	}
	want := map[occKey]store.Occurrence{}
	oldest := now
	for _, rt := range rows {
		loc, err := localtime.LoadZone(rt.Zone)
		if err != nil {
			s.log.Warn("plan: skip reminder time", "reminder", rt.ReminderID, "location", rt.LocationID, "err", err)
			continue
		}
		validFor := time.Duration(rt.ValidForS) * time.Second
		from := now.Add(-validFor)
		if created := rt.CreatedAt.Add(-time.Second); created.After(from) {
			from = created
		}
		to := now.Add(s.cfg.Horizon)
		if rt.StartsAt != nil && rt.StartsAt.Add(-time.Millisecond).After(from) {
			from = rt.StartsAt.Add(-time.Millisecond)
		}
		if rt.EndsAt != nil && rt.EndsAt.Before(to) {
			to = *rt.EndsAt
		}
		if from.Before(oldest) {
			oldest = from
		}
		for _, at := range localtime.Between(from, to, localtime.Of(rt.LocalSec), loc) {
			k := occKey{rt.ReminderID, rt.LocationID, at.UnixMilli()}
			want[k] = store.Occurrence{
				ReminderID: rt.ReminderID, LocationID: rt.LocationID, FireAt: at,
				ExpiresAt: at.Add(validFor), State: store.OccScheduled,
			}
		}
	}

	var existing []store.Occurrence
	err = s.db.WithContext(ctx).
		Select("id", "reminder_id", "location_id", "fire_at", "expires_at", "state").
		Where("fire_at > ? AND state IN ?", oldest.Add(-time.Second), []string{store.OccScheduled, store.OccCanceled}).
		Find(&existing).Error
	if err != nil {
		return fmt.Errorf("plan: load occurrences: %w", err)
	}
	seen := map[occKey]bool{}
	var cancelIDs, reviveIDs []int64
	for _, o := range existing {
		k := occKey{o.ReminderID, o.LocationID, o.FireAt.UnixMilli()}
		seen[k] = true
		w, wanted := want[k]
		switch {
		case o.State == store.OccScheduled && !wanted && o.ExpiresAt.Before(now):
			// Out of the planning window because its validity passed while
			// it waited: the firer records it as expired.
		case o.State == store.OccScheduled && !wanted:
			cancelIDs = append(cancelIDs, o.ID)
		case o.State == store.OccCanceled && wanted && o.FireAt.After(now):
			reviveIDs = append(reviveIDs, o.ID)
		case wanted && !o.ExpiresAt.Equal(w.ExpiresAt):
			if err := s.db.WithContext(ctx).Model(&store.Occurrence{}).Where("id = ? AND state = ?", o.ID, o.State).
				Update("expires_at", w.ExpiresAt).Error; err != nil {
				return fmt.Errorf("plan: update validity: %w", err)
			}
		}
	}
	var add []store.Occurrence
	for k, o := range want {
		if !seen[k] {
			add = append(add, o)
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
	if len(add)+len(cancelIDs)+len(reviveIDs) > 0 {
		s.log.Info("planned", "added", len(add), "canceled", len(cancelIDs), "revived", len(reviveIDs))
	}
	return nil
}
