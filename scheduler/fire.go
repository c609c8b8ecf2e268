package scheduler

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/store"
)

func (s *Scheduler) runFirer(ctx context.Context) error {
	var prepared sync.Map
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		wait, err := s.fireDue(ctx, &prepared, &wg)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("fire failed", "err", err)
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wakeFire:
		case <-s.clock.After(wait):
		}
	}
}

// fireDue fires every occurrence whose instant has come, starts preparing
// those due within PrepareLead, and returns how long to wait for the next.
func (s *Scheduler) fireDue(ctx context.Context, prepared *sync.Map, wg *sync.WaitGroup) (time.Duration, error) {
	now := s.clock.Now()
	var due []store.Occurrence
	qctx, cancel := withTimeout(ctx)
	err := s.db.WithContext(qctx).Where("state = ? AND fire_at <= ?", store.OccScheduled, now.Add(s.cfg.PrepareLead)).
		Order("fire_at").Limit(1000).Find(&due).Error
	cancel()
	if err != nil {
		return 0, fmt.Errorf("load due occurrences: %w", err)
	}
	wait := s.cfg.PrepareLead
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, o := range due {
		if until := o.FireAt.Sub(now); until > 0 {
			wait = min(wait, until)
			if _, done := prepared.LoadOrStore(o.ID, true); !done {
				wg.Add(1)
				go func() {
					defer wg.Done()
					l := grouping.Loc{Reminder: o.ReminderID, Location: o.LocationID}
					if err := s.index.EnsureBuilt(ctx, l); err != nil && ctx.Err() == nil {
						s.log.Warn("prepare index", "occurrence", o.ID, "err", err)
					}
				}()
			}
			continue
		}
		g.Go(func() error {
			prepared.Delete(o.ID)
			if err := s.Fire(gctx, o); err != nil {
				return fmt.Errorf("fire occurrence %d: %w", o.ID, err)
			}
			return nil
		})
	}
	if len(due) == 1000 {
		wait = 0
	}
	return wait, g.Wait()
}

// Fire enqueues the groups of o, or marks it expired if its validity window
// has passed. Only the caller that moves o from scheduled to firing enqueues;
// a second coordinator doing the same finds nothing to do.
func (s *Scheduler) Fire(ctx context.Context, o store.Occurrence) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	now := s.clock.Now()
	if now.After(o.ExpiresAt) {
		res := s.db.WithContext(ctx).Model(&store.Occurrence{}).Where("id = ? AND state = ?", o.ID, store.OccScheduled).
			Updates(map[string]any{"state": store.OccExpired, "done_at": now})
		if res.Error != nil {
			return res.Error
		}
		s.log.Warn("occurrence expired before it could fire", "occurrence", o.ID, "fire_at", o.FireAt)
		return nil
	}
	var r store.Reminder
	var l store.Location
	if err := s.db.WithContext(ctx).First(&r, o.ReminderID).Error; err != nil {
		return fmt.Errorf("load reminder: %w", err)
	}
	if err := s.db.WithContext(ctx).First(&l, o.LocationID).Error; err != nil {
		return fmt.Errorf("load location: %w", err)
	}
	loc := grouping.Loc{Reminder: o.ReminderID, Location: o.LocationID}
	if err := s.index.EnsureBuilt(ctx, loc); err != nil {
		return err
	}
	groups, err := s.index.Groups(ctx, loc)
	if err != nil {
		return err
	}
	runs := make([]store.GroupRun, len(groups))
	for i, g := range groups {
		runs[i] = store.GroupRun{OccurrenceID: o.ID, GroupNo: g, State: store.RunQueued, Attempts: 1, QueuedAt: now}
	}
	err = store.Transaction(ctx, s.db, func(tx *gorm.DB) error {
		fields := map[string]any{"state": store.OccFiring, "fired_at": now, "groups_total": len(groups)}
		if len(groups) == 0 {
			fields["state"] = store.OccDone
			fields["done_at"] = now
		}
		res := tx.Model(&store.Occurrence{}).Where("id = ? AND state = ?", o.ID, store.OccScheduled).Updates(fields)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return errLost
		}
		if len(runs) == 0 {
			return nil
		}
		return tx.Clauses(clause.OnConflict{DoNothing: true}).CreateInBatches(&runs, 1000).Error
	})
	if err == errLost {
		s.log.Info("occurrence fired by another coordinator", "occurrence", o.ID)
		return nil
	}
	if err != nil {
		return fmt.Errorf("record firing: %w", err)
	}
	ps := make([]queue.Payload, len(groups))
	for i, g := range groups {
		ps[i] = payload(o, r, l, g, 1)
	}
	// If this fails, the reaper enqueues the runs after QueueTimeout.
	if err := s.enq.Enqueue(ctx, ps); err != nil {
		return err
	}
	s.log.Info("fired", "occurrence", o.ID, "reminder", r.Key, "location", l.Name, "groups", len(groups),
		"late_ms", s.clock.Now().Sub(o.FireAt).Milliseconds())
	return nil
}

func payload(o store.Occurrence, r store.Reminder, l store.Location, group, attempt int) queue.Payload {
	return queue.Payload{
		Occurrence: o.ID, Reminder: o.ReminderID, Location: o.LocationID, Group: group, Attempt: attempt,
		FireAt: o.FireAt, ExpiresAt: o.ExpiresAt, Key: r.Key, Title: r.Title, Body: r.Body,
		LocationName: l.Name, Zone: l.Zone,
	}
}
