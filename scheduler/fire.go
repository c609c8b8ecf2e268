package scheduler

import (
	"cmp"
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
	"github.com/chime-dev/chime/policy"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/store"
)

// prepared is what the firer readied for one occurrence before its instant.
type prepared struct {
	paused bool
	// busy is set when another fire of the location was in flight at the
	// preparation, so its layout was left as it was.
	busy     bool
	layout   grouping.Layout
	payloads []queue.Payload // one per group of layout, in its order
	edited   time.Time       // the reminder's updated_at the payloads were built from
	// slots are the planned slots of a spread send, one per group of
	// layout; nil sends every group at the instant.
	slots  []time.Time
	spread time.Duration
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
	var dueNow []store.Occurrence
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
		dueNow = append(dueNow, o)
	}
	// A full page that fired something may hide more due rows behind it.
	if len(due) == 1000 && len(dueNow) > 0 {
		wait = 0
	}
	err = s.fire(ctx, dueNow)
	// The slots of spread sends come due between instants: the firer
	// wakes for the next one.
	wait, serr := s.fireSlots(ctx, wait)
	return wait, errors.Join(err, serr)
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
	loc := grouping.Loc{Reminder: o.ReminderID, Location: o.LocationID}
	layout, busy := testSendLayout, false
	var err error
	if o.TestUser == "" {
		// The layout changes only while no fire of the location is in
		// flight: a fire in flight keeps the layout its tasks were
		// prepared with.
		if busy, err = store.FiringAt(ctx, s.db, o.ReminderID, o.LocationID, o.ID); err != nil {
			return nil, fmt.Errorf("check fires in flight: %w", err)
		}
		if layout, err = s.index.Fit(ctx, loc, r.Groups, !busy); err != nil {
			return nil, err
		}
	}
	var spread time.Duration
	var planned []time.Time
	if o.TestUser == "" && r.SpreadS > 0 && len(layout.Groups) > 0 {
		spread = r.Spread()
		planned = slots(o.FireAt, spread, len(layout.Groups), phase(o.ReminderID, o.LocationID))
	}
	if err := s.createRuns(ctx, o.ID, layout, planned, s.clock.Now()); err != nil {
		return nil, err
	}
	data, err := s.eventData(ctx, o)
	if err != nil {
		return nil, err
	}
	pol, err := s.policyOf(ctx, r)
	if err != nil {
		return nil, err
	}
	// A test send goes out whether or not the reminder is paused: it shows
	// the message, and reaches no one but its user.
	p := &prepared{paused: r.Paused && o.TestUser == "", busy: busy, layout: layout, payloads: make([]queue.Payload, len(layout.Groups)), edited: r.UpdatedAt,
		slots: planned, spread: spread}
	for i, g := range layout.Groups {
		p.payloads[i] = payload(o, r, l, g, layout.N, 1)
		p.payloads[i].Data = data
		p.payloads[i].Policy = pol
	}
	return p, nil
}

// testSendLayout is a test send's layout: one group, numbered 0, whose only
// member its task names, whatever the location's layout; the index is not
// read.
var testSendLayout = grouping.Layout{N: 1, Groups: []int{0}, Sizes: []int{1}}

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

// createRuns inserts pending group runs, at their planned slots if slots is
// not nil; existing ones are left as they are.
func (s *Scheduler) createRuns(ctx context.Context, occ int64, layout grouping.Layout, slots []time.Time, now time.Time) error {
	if len(layout.Groups) == 0 {
		return nil
	}
	runs := make([]store.GroupRun, len(layout.Groups))
	for i, g := range layout.Groups {
		runs[i] = store.GroupRun{OccurrenceID: occ, GroupNo: g, Layout: layout.N, State: store.RunPending, Attempts: 1, QueuedAt: now}
		if slots != nil {
			runs[i].SlotAt = &slots[i]
		}
	}
	// A run prepared before under another layout (the preparation was
	// repeated after a regroup) takes the new one: the occurrence has not
	// fired, so no task of the old layout is out. Its slot is planned
	// again with the groups (and spread) of this preparation.
	if err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "occurrence_id"}, {Name: "group_no"}},
		DoUpdates: clause.AssignmentColumns([]string{"layout", "slot_at"}),
	}).CreateInBatches(&runs, 1000).Error; err != nil {
		return fmt.Errorf("create group runs: %w", err)
	}
	return nil
}

// Fire enqueues the groups of o, or records it as missed if its grace window
// has passed. Only the caller that moves o from scheduled to firing enqueues;
// a second coordinator doing the same finds nothing to do.
func (s *Scheduler) Fire(ctx context.Context, o store.Occurrence) error {
	return s.fire(ctx, []store.Occurrence{o})
}

// won is an occurrence whose compare-and-set this coordinator won.
type won struct {
	o store.Occurrence
	p *prepared
}

// fire fires the occurrences occs, due at the same pass of the firer, with
// their small groups sharing tasks (queue.Pack): a location of 200 users at
// the same instant as 4,999 others costs part of a task, not a task of its
// own.
//
// With the occurrences prepared, the instant costs one check of the layout
// in Redis per occurrence, one compare-and-set in MySQL each and the
// enqueue; the group runs move from pending to queued while the tasks go
// out. Workers' acks accept a pending run, so none is lost to that race.
func (s *Scheduler) fire(ctx context.Context, occs []store.Occurrence) error {
	if len(occs) == 0 {
		return nil
	}
	// Occurrences are claimed independently: one failing must not cancel
	// another that has already won its compare-and-set.
	var g errgroup.Group
	g.SetLimit(8)
	var mu sync.Mutex
	var errs []error
	var wins []won
	for _, o := range occs {
		g.Go(func() error {
			p, err := s.claim(ctx, o)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("fire occurrence %d: %w", o.ID, err))
			} else if p != nil {
				wins = append(wins, won{o, p})
			}
			return nil
		})
	}
	_ = g.Wait()
	// Spread sends enqueue nothing at the instant: their groups wait,
	// pending, for their slots (fireSlots).
	wins = slices.DeleteFunc(wins, func(w won) bool {
		if w.p.slots == nil {
			return false
		}
		if err := s.spreadFired(ctx, w); err != nil {
			errs = append(errs, fmt.Errorf("fire occurrence %d: %w", w.o.ID, err))
		}
		return true
	})
	if len(wins) == 0 {
		return errors.Join(errs...)
	}
	// Won: finish the enqueue even if leadership ends now (a leader stopping
	// mid-fire), or the next leader would find these groups only after
	// QueueTimeout.
	ctx, cancel := withTimeout(context.WithoutCancel(ctx))
	defer cancel()
	slices.SortFunc(wins, func(a, b won) int { return cmp.Compare(a.o.ID, b.o.ID) })
	var ps []queue.Payload
	var sizes []int
	for _, w := range wins {
		ps = append(ps, w.p.payloads...)
		sizes = append(sizes, w.p.layout.Sizes...)
	}
	tasks, err := queue.Pack(ps, sizes, s.index.Target(), queue.DefaultTaskParts)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	// The tasks go out while the runs are marked queued. Marking them is
	// bookkeeping (acks accept a pending run), so its failure must not stop
	// the enqueue; a failed enqueue leaves its runs to the reaper, which
	// enqueues them again after QueueTimeout, one task per group.
	enqueued := make(chan error, 1)
	go func() { enqueued <- s.enq.Enqueue(ctx, tasks) }()
	now := s.clock.Now()
	var mg errgroup.Group
	mg.SetLimit(8)
	for _, w := range wins {
		mg.Go(func() error {
			if err := s.markQueued(ctx, w.o, w.p.layout.Groups, now); err != nil {
				s.log.Warn("mark group runs queued", "occurrence", w.o.ID, "err", err)
			}
			return nil
		})
	}
	_ = mg.Wait()
	if err := <-enqueued; err != nil {
		return errors.Join(append(errs, err)...)
	}
	late := s.clock.Now()
	for _, w := range wins {
		metrics.Fired(late.Sub(w.o.FireAt))
		s.log.Info("fired", "occurrence", w.o.ID, "reminder", w.o.ReminderID, "location", w.o.LocationID,
			"groups", len(w.p.layout.Groups), "layout", w.p.layout.N, "late_ms", late.Sub(w.o.FireAt).Milliseconds())
	}
	if len(wins) > 1 || len(tasks) != len(ps) {
		s.log.Info("fired together", "occurrences", len(wins), "groups", len(ps), "tasks", len(tasks))
	}
	return errors.Join(errs...)
}

// claim readies o for its fire and wins its compare-and-set, returning what
// to enqueue, or nil when there is nothing to enqueue (missed, paused, no
// groups, or fired by another coordinator).
func (s *Scheduler) claim(ctx context.Context, o store.Occurrence) (*prepared, error) {
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
			return nil, res.Error
		}
		metrics.Missed(1)
		s.log.Warn("occurrence missed: its grace window passed before it could fire", "occurrence", o.ID, "fire_at", o.FireAt)
		return nil, nil
	}
	if p == nil {
		var err error
		if p, err = s.Prepare(ctx, o); err != nil {
			return nil, err
		}
	}
	// Subscriptions since the preparation may have filled new groups, a
	// regroup may have changed the layout, and the message may have been
	// edited.
	layout := testSendLayout
	var err error
	if o.TestUser == "" {
		layout, err = s.index.Groups(ctx, grouping.Loc{Reminder: o.ReminderID, Location: o.LocationID})
		if err != nil && !errors.Is(err, grouping.ErrNotBuilt) {
			return nil, err
		}
	}
	var edited []time.Time
	if err := s.db.WithContext(ctx).Model(&store.Reminder{}).Where("id = ?", o.ReminderID).Pluck("updated_at", &edited).Error; err != nil {
		return nil, fmt.Errorf("check reminder: %w", err)
	}
	// A preparation that could not regroup (another fire of the location
	// was in flight) is done again: that fire may be over by now.
	if p.busy || layout.N != p.layout.N || !slices.Equal(layout.Groups, p.layout.Groups) || len(edited) != 1 || !edited[0].Equal(p.edited) {
		if p, err = s.Prepare(ctx, o); err != nil {
			return nil, err
		}
	}

	if p.paused {
		// Paused after it was planned: the planner cancels such occurrences,
		// but the instant may come first.
		err := s.db.WithContext(ctx).Model(&store.Occurrence{}).Where("id = ? AND state = ?", o.ID, store.OccScheduled).
			Update("state", store.OccCanceled).Error
		if err != nil {
			return nil, fmt.Errorf("cancel occurrence of a paused reminder: %w", err)
		}
		s.log.Info("reminder paused; occurrence canceled", "occurrence", o.ID)
		return nil, nil
	}
	groups := p.layout.Groups
	fields := map[string]any{"state": store.OccFiring, "fired_at": now, "groups_total": len(groups)}
	if p.slots != nil {
		fields["spread_s"] = int64(p.spread / time.Second)
	}
	if len(groups) == 0 {
		fields["state"] = store.OccDone
		fields["done_at"] = now
	}
	// Coordinators racing for one occurrence can deadlock on its row
	// (InnoDB gap locks); the transaction helper runs such a loser again,
	// and the compare-and-set then finds the row taken.
	var n int64
	err = store.Transaction(ctx, s.db, func(tx *gorm.DB) error {
		res := tx.Model(&store.Occurrence{}).Where("id = ? AND state = ?", o.ID, store.OccScheduled).Updates(fields)
		n = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return nil, fmt.Errorf("record firing: %w", err)
	}
	if n == 0 {
		s.log.Info("occurrence fired by another coordinator", "occurrence", o.ID)
		return nil, nil
	}
	if len(groups) == 0 {
		s.log.Info("fired", "occurrence", o.ID, "reminder", o.ReminderID, "location", o.LocationID, "groups", 0)
		return nil, nil
	}
	return p, nil
}

// markQueued marks the pending runs of o queued, and deletes those prepared
// for groups that are no longer listed (the index was rebuilt smaller
// since), which are not part of this firing.
func (s *Scheduler) markQueued(ctx context.Context, o store.Occurrence, groups []int, now time.Time) error {
	return store.QueueRuns(ctx, s.db, o.ID, groups, now)
}

// policyOf is the delivery policy r's tasks carry: its category, critical
// flag and quiet mode, with the app's delivery settings as they are now.
func (s *Scheduler) policyOf(ctx context.Context, r store.Reminder) (*message.Policy, error) {
	doc, err := store.AppDeliverySettings(ctx, s.db, r.AppID)
	if err != nil {
		return nil, err
	}
	return policy.Snapshot(r.Category, r.Critical, r.Quiet, doc)
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

func payload(o store.Occurrence, r store.Reminder, l store.Location, group, layout, attempt int) queue.Payload {
	p := queue.Payload{
		Message: message.Message{
			Occurrence: o.ID, Group: group, ReminderID: o.ReminderID, Reminder: r.Key, App: r.AppID,
			Title: r.Title, Body: r.Body, Location: l.Name, Zone: l.Zone, FireAt: o.FireAt, ExpiresAt: o.ExpiresAt, Prayer: o.Prayer,
			Tags: r.Tags, Lang: r.Lang, Translations: translations(r.Translations),
			DeliverWhenOnline: r.DeliverWhenOnline, NotifyContacts: r.NotifyContacts,
		},
		LocationID: o.LocationID, Layout: layout, Attempt: attempt,
	}
	if o.TestUser != "" {
		p.Users = []string{o.TestUser}
	}
	return p
}
