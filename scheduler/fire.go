package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/metrics"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/store"
)

// prepared is what the firer readied for one occurrence before its instant.
type prepared struct {
	paused   bool
	groups   []int
	payloads []queue.Payload
	edited   time.Time // the reminder's updated_at the payloads were built from
}

func (s *Scheduler) runFirer(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		wait, err := s.fireDue(ctx, &wg)
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
func (s *Scheduler) fireDue(ctx context.Context, wg *sync.WaitGroup) (time.Duration, error) {
	now := s.clock.Now()
	var due []store.Occurrence
	qctx, cancel := withTimeout(ctx)
	err := s.db.WithContext(qctx).Where("state = ? AND fire_at <= ?", store.OccScheduled, now.Add(s.cfg.PrepareLead)).
		Order("fire_at").Limit(1000).Find(&due).Error
	cancel()
	if err != nil {
		return 0, fmt.Errorf("load due occurrences: %w", err)
	}
	s.forget(due)
	wait := s.cfg.PrepareLead
	// Occurrences fire independently: one failing must not cancel another
	// that has already won its compare-and-set.
	var g errgroup.Group
	g.SetLimit(8)
	var mu sync.Mutex
	var errs []error
	fired := false
	for _, o := range due {
		if until := o.FireAt.Sub(now); until > 0 {
			wait = min(wait, until)
			if s.startPreparing(o.ID) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p, err := s.Prepare(ctx, o)
					s.mu.Lock()
					defer s.mu.Unlock()
					if err != nil {
						if ctx.Err() == nil {
							s.log.Warn("prepare occurrence", "occurrence", o.ID, "err", err)
						}
						delete(s.ready, o.ID) // try again on the next pass
						return
					}
					if _, waiting := s.ready[o.ID]; waiting {
						s.ready[o.ID] = p
					}
				}()
			}
			continue
		}
		fired = true
		g.Go(func() error {
			if err := s.Fire(ctx, o); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("fire occurrence %d: %w", o.ID, err))
				mu.Unlock()
			}
			return nil
		})
	}
	// A full page that fired something may hide more due rows behind it.
	if len(due) == 1000 && fired {
		wait = 0
	}
	_ = g.Wait()
	return wait, errors.Join(errs...)
}

// startPreparing reports whether the caller should prepare occurrence id,
// which is so once per occurrence.
func (s *Scheduler) startPreparing(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ready[id]; ok {
		return false
	}
	s.ready[id] = nil
	return true
}

// Prepare does ahead of the instant everything firing o needs except the
// enqueue: the membership index is made ready, the group runs are created in
// state pending, and the tasks are built and kept in memory.
func (s *Scheduler) Prepare(ctx context.Context, o store.Occurrence) (*prepared, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	var r store.Reminder
	var l store.Location
	if err := s.db.WithContext(ctx).First(&r, o.ReminderID).Error; err != nil {
		return nil, fmt.Errorf("load reminder: %w", err)
	}
	if err := s.db.WithContext(ctx).First(&l, o.LocationID).Error; err != nil {
		return nil, fmt.Errorf("load location: %w", err)
	}
	groups, err := s.groupsOf(ctx, o, true)
	if err != nil {
		return nil, err
	}
	if err := s.createRuns(ctx, o.ID, groups, s.clock.Now()); err != nil {
		return nil, err
	}
	data, err := s.eventData(ctx, o)
	if err != nil {
		return nil, err
	}
	// A test send goes out whether or not the reminder is paused: it shows
	// the message, and reaches no one but its user.
	p := &prepared{paused: r.Paused && o.TestUser == "", groups: groups, payloads: make([]queue.Payload, len(groups)), edited: r.UpdatedAt}
	for i, g := range groups {
		p.payloads[i] = payload(o, r, l, g, 1)
		p.payloads[i].Data = data
	}
	return p, nil
}

// groupsOf lists the groups o delivers to, sorted, building the membership
// index first if build is set. A test send has one group, numbered 0, whose
// only member its task names: the index is not read.
func (s *Scheduler) groupsOf(ctx context.Context, o store.Occurrence, build bool) ([]int, error) {
	if o.TestUser != "" {
		return []int{0}, nil
	}
	loc := grouping.Loc{Reminder: o.ReminderID, Location: o.LocationID}
	if build {
		if err := s.index.EnsureBuilt(ctx, loc); err != nil {
			return nil, err
		}
	}
	groups, err := s.index.Groups(ctx, loc)
	if err != nil {
		return nil, err
	}
	slices.Sort(groups)
	return groups, nil
}

// forget drops what was prepared for occurrences no longer due: canceled,
// fired by another coordinator, or moved.
func (s *Scheduler) forget(due []store.Occurrence) {
	ids := make(map[int64]bool, len(due))
	for _, o := range due {
		ids[o.ID] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.ready {
		if !ids[id] {
			delete(s.ready, id)
		}
	}
}

// createRuns inserts pending group runs; existing ones are left as they are.
func (s *Scheduler) createRuns(ctx context.Context, occ int64, groups []int, now time.Time) error {
	if len(groups) == 0 {
		return nil
	}
	runs := make([]store.GroupRun, len(groups))
	for i, g := range groups {
		runs[i] = store.GroupRun{OccurrenceID: occ, GroupNo: g, State: store.RunPending, Attempts: 1, QueuedAt: now}
	}
	if err := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).CreateInBatches(&runs, 1000).Error; err != nil {
		return fmt.Errorf("create group runs: %w", err)
	}
	return nil
}

// Fire enqueues the groups of o, or records it as missed if its grace window
// has passed. Only the caller that moves o from scheduled to firing enqueues;
// a second coordinator doing the same finds nothing to do.
//
// With o prepared, the instant costs one check of the group list in Redis,
// one compare-and-set in MySQL and the enqueue; the group runs move from
// pending to queued while the tasks go out. Workers' acks accept a pending
// run, so none is lost to that race.
func (s *Scheduler) Fire(ctx context.Context, o store.Occurrence) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	s.mu.Lock()
	p := s.ready[o.ID]
	delete(s.ready, o.ID)
	s.mu.Unlock()

	now := s.clock.Now()
	if now.After(missAt(o)) {
		res := s.db.WithContext(ctx).Model(&store.Occurrence{}).Where("id = ? AND state = ?", o.ID, store.OccScheduled).
			Updates(map[string]any{"state": store.OccMissed, "done_at": now})
		if res.Error != nil {
			return res.Error
		}
		metrics.Missed(1)
		s.log.Warn("occurrence missed: its grace window passed before it could fire", "occurrence", o.ID, "fire_at", o.FireAt)
		return nil
	}
	if p == nil {
		var err error
		if p, err = s.Prepare(ctx, o); err != nil {
			return err
		}
	}
	// Subscriptions since the preparation may have filled new groups, and
	// the message may have been edited.
	groups, err := s.groupsOf(ctx, o, false)
	if err != nil {
		return err
	}
	var edited []time.Time
	if err := s.db.WithContext(ctx).Model(&store.Reminder{}).Where("id = ?", o.ReminderID).Pluck("updated_at", &edited).Error; err != nil {
		return fmt.Errorf("check reminder: %w", err)
	}
	if !slices.Equal(groups, p.groups) || len(edited) != 1 || !edited[0].Equal(p.edited) {
		if p, err = s.Prepare(ctx, o); err != nil {
			return err
		}
		groups = p.groups
	}

	if p.paused {
		// Paused after it was planned: the planner cancels such occurrences,
		// but the instant may come first.
		err := s.db.WithContext(ctx).Model(&store.Occurrence{}).Where("id = ? AND state = ?", o.ID, store.OccScheduled).
			Update("state", store.OccCanceled).Error
		if err != nil {
			return fmt.Errorf("cancel occurrence of a paused reminder: %w", err)
		}
		s.log.Info("reminder paused; occurrence canceled", "occurrence", o.ID)
		return nil
	}
	fields := map[string]any{"state": store.OccFiring, "fired_at": now, "groups_total": len(groups)}
	if len(groups) == 0 {
		fields["state"] = store.OccDone
		fields["done_at"] = now
	}
	// Coordinators racing for one occurrence can deadlock on its row
	// (InnoDB gap locks); the transaction helper runs such a loser again,
	// and the compare-and-set then finds the row taken.
	var won int64
	err = store.Transaction(ctx, s.db, func(tx *gorm.DB) error {
		res := tx.Model(&store.Occurrence{}).Where("id = ? AND state = ?", o.ID, store.OccScheduled).Updates(fields)
		won = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return fmt.Errorf("record firing: %w", err)
	}
	if won == 0 {
		s.log.Info("occurrence fired by another coordinator", "occurrence", o.ID)
		return nil
	}
	// Won: finish the enqueue even if leadership ends now (a leader stopping
	// mid-fire), or the next leader would find these groups only after
	// QueueTimeout.
	ctx, cancelEnqueue := withTimeout(context.WithoutCancel(ctx))
	defer cancelEnqueue()
	// The tasks go out while the runs are marked queued. Marking them is
	// bookkeeping (acks accept a pending run), so its failure must not stop
	// the enqueue; a failed enqueue leaves its runs to the reaper, which
	// enqueues them again after QueueTimeout.
	enqueued := make(chan error, 1)
	go func() { enqueued <- s.enq.Enqueue(ctx, p.payloads) }()
	err = store.Transaction(ctx, s.db, func(tx *gorm.DB) error {
		// Runs prepared for groups that are no longer listed (the index was
		// rebuilt smaller since) are not part of this firing.
		stale := tx.Where("occurrence_id = ? AND state = ?", o.ID, store.RunPending)
		if len(groups) > 0 {
			stale = stale.Where("group_no NOT IN ?", groups)
		}
		if err := stale.Delete(&store.GroupRun{}).Error; err != nil {
			return err
		}
		return tx.Model(&store.GroupRun{}).Where("occurrence_id = ? AND state = ?", o.ID, store.RunPending).
			Updates(map[string]any{"state": store.RunQueued, "queued_at": now}).Error
	})
	if err != nil {
		s.log.Warn("mark group runs queued", "occurrence", o.ID, "err", err)
	}
	if err := <-enqueued; err != nil {
		return err
	}
	metrics.Fired(s.clock.Now().Sub(o.FireAt))
	s.log.Info("fired", "occurrence", o.ID, "reminder", o.ReminderID, "location", o.LocationID,
		"groups", len(groups), "late_ms", s.clock.Now().Sub(o.FireAt).Milliseconds())
	return nil
}

// eventData returns the data of the event o fires for, if any.
func (s *Scheduler) eventData(ctx context.Context, o store.Occurrence) (json.RawMessage, error) {
	if o.EventID == 0 {
		return nil, nil
	}
	var e store.Event
	if err := s.db.WithContext(ctx).Select("data").First(&e, o.EventID).Error; err != nil {
		return nil, fmt.Errorf("load event: %w", err)
	}
	return json.RawMessage(e.Data), nil
}

func payload(o store.Occurrence, r store.Reminder, l store.Location, group, attempt int) queue.Payload {
	p := queue.Payload{
		Message: message.Message{
			Occurrence: o.ID, Group: group, ReminderID: o.ReminderID, Reminder: r.Key, App: r.AppID,
			Title: r.Title, Body: r.Body, Location: l.Name, Zone: l.Zone, FireAt: o.FireAt, ExpiresAt: o.ExpiresAt, Prayer: o.Prayer,
			Tags: r.Tags, Lang: r.Lang, Translations: translations(r.Translations),
			DeliverWhenOnline: r.DeliverWhenOnline, NotifyContacts: r.NotifyContacts,
		},
		LocationID: o.LocationID, Attempt: attempt,
	}
	if o.TestUser != "" {
		p.Users = []string{o.TestUser}
	}
	return p
}
