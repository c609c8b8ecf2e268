package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/policy"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/store"
)

// A preparation is the readying of one occurrence, in flight until done is
// closed; p is then what was prepared, or nil if it failed.
type preparation struct {
	done chan struct{}
	p    *prepared
}

// Prepare does ahead of the instant everything firing o needs except the
// enqueue: the membership index is made ready, the group runs are created in
// state pending, and the tasks are built and kept in memory.
func (s *Scheduler) Prepare(ctx context.Context, o store.Occurrence) (*prepared, error) {
	ps, errs := s.prepareAll(ctx, []store.Occurrence{o})
	return ps[0], errs[0]
}

// prepareAll prepares occs as Prepare does, together: thousands of small
// locations due at one instant cost a query per thousand of them for their
// reminders, locations and fires in flight, one pipeline of index checks
// (grouping.FitAll) and batched inserts of their runs, not a round trip of
// each per location. errs[i] is occs[i]'s error.
func (s *Scheduler) prepareAll(ctx context.Context, occs []store.Occurrence) ([]*prepared, []error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	ps, errs := make([]*prepared, len(occs)), make([]error, len(occs))
	fail := func(err error) ([]*prepared, []error) {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return make([]*prepared, len(occs)), errs
	}
	var reminderIDs, locationIDs []int64
	var fits []store.Occurrence // occurrences whose index is read (not test sends)
	for _, o := range occs {
		reminderIDs = append(reminderIDs, o.ReminderID)
		locationIDs = append(locationIDs, o.LocationID)
		if o.TestUser == "" {
			fits = append(fits, o)
		}
	}
	reminders, err := store.RemindersByID(ctx, s.db, reminderIDs)
	if err != nil {
		return fail(err)
	}
	locations, err := store.LocationsByID(ctx, s.db, locationIDs)
	if err != nil {
		return fail(err)
	}
	// The layout changes only while no fire of the location is in flight:
	// a fire in flight keeps the layout its tasks were prepared with.
	busy, err := store.FiringOf(ctx, s.db, fits)
	if err != nil {
		return fail(err)
	}
	// Only an occurrence whose reminder and location still exist touches
	// the index: a deleted one's would be rebuilt for nothing.
	exists := func(o store.Occurrence) bool {
		_, rok := reminders[o.ReminderID]
		_, lok := locations[o.LocationID]
		return rok && lok
	}
	var reqs []grouping.FitRequest
	for _, o := range fits {
		if exists(o) {
			reqs = append(reqs, grouping.FitRequest{Loc: grouping.Loc{Reminder: o.ReminderID, Location: o.LocationID},
				Fixed: reminders[o.ReminderID].Groups, Regroup: !busy[o.ID]})
		}
	}
	fitted, fitErrs := s.index.FitAll(ctx, reqs)
	policies := map[int64]*message.Policy{} // reminder -> its tasks' policy
	events := map[int64]json.RawMessage{}   // event -> its data
	now := s.clock.Now()
	var runs []store.GroupRun
	k := 0
	for i, o := range occs {
		r, rok := reminders[o.ReminderID]
		l, lok := locations[o.LocationID]
		switch {
		case !rok:
			errs[i] = fmt.Errorf("load reminder %d: not found", o.ReminderID)
			continue
		case !lok:
			errs[i] = fmt.Errorf("load location %d: not found", o.LocationID)
			continue
		}
		layout := testSendLayout
		if o.TestUser == "" {
			layout, errs[i] = fitted[k], fitErrs[k]
			k++
		}
		if errs[i] != nil {
			continue
		}
		var spread time.Duration
		var planned []time.Time
		if o.TestUser == "" && r.SpreadS > 0 && len(layout.Groups) > 0 {
			spread = r.Spread()
			planned = slots(o.FireAt, spread, len(layout.Groups), phase(o.ReminderID, o.LocationID))
		}
		data, ok := events[o.EventID]
		if !ok {
			var err error
			if data, err = s.eventData(ctx, o); err != nil {
				errs[i] = err
				continue
			}
			events[o.EventID] = data
		}
		pol, ok := policies[r.ID]
		if !ok {
			var err error
			if pol, err = s.policyOf(ctx, r); err != nil {
				errs[i] = err
				continue
			}
			policies[r.ID] = pol
		}
		// A test send goes out whether or not the reminder is paused: it
		// shows the message, and reaches no one but its user.
		p := &prepared{paused: r.Paused && o.TestUser == "", busy: o.TestUser == "" && busy[o.ID], layout: layout,
			payloads: make([]queue.Payload, len(layout.Groups)), edited: r.UpdatedAt, slots: planned, spread: spread}
		for j, g := range layout.Groups {
			p.payloads[j] = payload(o, r, l, g, layout.N, 1)
			p.payloads[j].Data = data
			p.payloads[j].Policy = pol
		}
		ps[i] = p
		runs = append(runs, newRuns(o.ID, layout, planned, now)...)
	}
	failed, err := store.CreateRuns(ctx, s.db, runs)
	for i, o := range occs {
		if failed[o.ID] && errs[i] == nil {
			errs[i] = err
		}
		if errs[i] != nil {
			ps[i] = nil
		}
	}
	return ps, errs
}

// testSendLayout is a test send's layout: one group, numbered 0, whose only
// member its task names, whatever the location's layout; the index is not
// read.
var testSendLayout = grouping.Layout{N: 1, Groups: []int{0}, Sizes: []int{1}}

// newRuns are occ's pending group runs of layout, at their planned slots if
// slots is not nil.
func newRuns(occ int64, layout grouping.Layout, slots []time.Time, now time.Time) []store.GroupRun {
	runs := make([]store.GroupRun, len(layout.Groups))
	for i, g := range layout.Groups {
		runs[i] = store.GroupRun{OccurrenceID: occ, GroupNo: g, Layout: layout.N, State: store.RunPending, Attempts: 1, QueuedAt: now}
		if slots != nil {
			runs[i].SlotAt = &slots[i]
		}
	}
	return runs
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
