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

	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/metrics"
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
		wake, err := s.fireDue(ctx, &wg)
		// The wait runs to the wake fireDue names, whenever this pass
		// ended: a pass that took long (the query and preparation of
		// thousands of occurrences due soon) does not make the next
		// instant late by its own length.
		wait := wake.Sub(s.clock.Now())
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

// fireDue fires every occurrence whose instant has come and those of the
// first instant within FireLead (at that instant), and the spread sends'
// slots that have come, starts preparing those due within PrepareLead, and
// returns when the firer is to pass again: FireLead before the next
// instant, so that the pass loads and checks what is due before the
// instant comes (fire), or at the next slot if that comes first.
func (s *Scheduler) fireDue(ctx context.Context, wg *sync.WaitGroup) (time.Time, error) {
	now := s.clock.Now()
	qctx, cancel := withTimeout(ctx)
	due, more, err := store.DueOccurrences(qctx, s.db, now.Add(s.cfg.PrepareLead), maxDue)
	cancel()
	if err != nil {
		return now, fmt.Errorf("load due occurrences: %w", err)
	}
	if !more {
		s.forget(due)
	}
	wait := s.cfg.PrepareLead
	var dueNow, toPrepare []store.Occurrence
	var preps []*preparation
	// The first instant within FireLead is fired by this pass: its
	// occurrences are checked now and claimed at the instant.
	var next time.Time
	for _, o := range due {
		if until := o.FireAt.Sub(now); until > 0 && until <= s.cfg.FireLead && (next.IsZero() || o.FireAt.Before(next)) {
			next = o.FireAt
		}
	}
	var dueNext []store.Occurrence
	for _, o := range due {
		until := o.FireAt.Sub(now)
		switch {
		case until <= 0:
			dueNow = append(dueNow, o)
		case o.FireAt.Equal(next):
			dueNext = append(dueNext, o)
		default:
			wait = min(wait, until)
			if prep := s.startPreparing(o.ID); prep != nil {
				toPrepare, preps = append(toPrepare, o), append(preps, prep)
			}
		}
	}
	if len(toPrepare) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.prepareAhead(ctx, toPrepare, preps)
		}()
	}
	// More due rows than one pass takes: the next pass comes at once.
	if more && len(dueNow) > 0 {
		wait = 0
	}
	err = s.fire(ctx, dueNow, time.Time{})
	// The slots of spread sends come due between instants: the firer
	// wakes for the next one, at its time.
	latest := now.Add(wait)
	slot, serr := s.fireSlots(ctx, latest)
	wake := minTime(latest.Add(-s.cfg.FireLead), slot)
	if len(dueNext) > 0 {
		// Its wait for the instant fires the slots that come first. A
		// spread send it claims has slots the query above could not see
		// yet: the firer passes again at once.
		err = errors.Join(err, s.fire(ctx, dueNext, next))
		wake = minTime(wake, next)
	}
	return wake, errors.Join(err, serr)
}

// waitFor waits until at, firing the spread sends' slots that come due
// meanwhile, so that a fire waiting out the last FireLead before its
// instant makes no slot late.
func (s *Scheduler) waitFor(ctx context.Context, at time.Time) error {
	// No slot work is started once the instant has come: the claims go
	// first.
	for s.clock.Now().Before(at) {
		next, err := s.fireSlots(ctx, at)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("fire spread slots", "err", err)
		}
		if d := minTime(next, at).Sub(s.clock.Now()); d > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-s.clock.After(d):
			}
		}
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// maxDue bounds the occurrences one pass of the firer loads, prepares and
// fires: 50 pages of a thousand.
const maxDue = 50_000

// prepareAhead prepares occs together and hands each result to its
// preparation, which a fire at the instant waits for rather than repeating
// the work. A failed one is forgotten, to be tried again on the next pass
// (or by its fire).
func (s *Scheduler) prepareAhead(ctx context.Context, occs []store.Occurrence, preps []*preparation) {
	ps, errs := s.prepareAll(ctx, occs)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, o := range occs {
		if errs[i] != nil {
			if ctx.Err() == nil {
				s.log.Warn("prepare occurrence", "occurrence", o.ID, "err", errs[i])
			}
			if s.ready[o.ID] == preps[i] {
				delete(s.ready, o.ID)
			}
		}
		preps[i].p = ps[i]
		close(preps[i].done)
	}
}

// startPreparing returns the preparation the caller should do for
// occurrence id, or nil: once per occurrence.
func (s *Scheduler) startPreparing(id int64) *preparation {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ready[id]; ok {
		return nil
	}
	prep := &preparation{done: make(chan struct{})}
	s.ready[id] = prep
	return prep
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

// Fire enqueues the groups of o, or records it as missed if its grace window
// has passed. Only the caller that moves o from scheduled to firing enqueues;
// a second coordinator doing the same finds nothing to do.
func (s *Scheduler) Fire(ctx context.Context, o store.Occurrence) error {
	return s.fire(ctx, []store.Occurrence{o}, time.Time{})
}

// won is an occurrence whose compare-and-set this coordinator won.
type won struct {
	o store.Occurrence
	p *prepared
}

// fire fires the occurrences occs, due at the same pass of the firer, with
// their small groups sharing tasks (queue.Pack, a thousand claimed at a
// time): a location of 200 users at the same instant as 4,999 others costs
// part of a task, not a task of its own.
//
// With the occurrences prepared, the instant costs one query of the
// reminders' edits, a few compare-and-set statements in MySQL (claimAll)
// and the enqueue; the group runs stay pending (a pending run of a firing
// occurrence is on the queue), so no run is written at the instant but
// those of groups no longer in a layout, deleted. A non-zero at is the occurrences' instant, still to come: what can
// be done before it (waiting for their preparations, checking their
// layouts in Redis) is, and the claims wait for it.
func (s *Scheduler) fire(ctx context.Context, occs []store.Occurrence, at time.Time) error {
	if len(occs) == 0 {
		return nil
	}
	// Each thousand claimed goes out while the next is claimed.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var enqErrs []error
	errs := s.claimAll(ctx, occs, at, func(wins []won) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.enqueueWon(ctx, wins); err != nil {
				mu.Lock()
				enqErrs = append(enqErrs, err)
				mu.Unlock()
			}
		}()
	})
	wg.Wait()
	return errors.Join(append(errs, enqErrs...)...)
}

// enqueueWon enqueues the tasks of fires won, packed together.
func (s *Scheduler) enqueueWon(ctx context.Context, wins []won) error {
	var errs []error
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
	// By reminder, so that the groups of one reminder share tasks and
	// their message is carried once a task (queue.Pack).
	slices.SortFunc(wins, func(a, b won) int {
		return cmp.Or(cmp.Compare(a.o.ReminderID, b.o.ReminderID), cmp.Compare(a.o.ID, b.o.ID))
	})
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
	// The tasks go out while the runs of groups no longer in the layout
	// are dropped; the others stay pending, which for a firing occurrence
	// means queued (acks and the reaper take them so), so the instant
	// writes no run. Dropping is bookkeeping, so its failure must not stop
	// the enqueue; a failed enqueue leaves its runs to the reaper, which
	// enqueues them again after QueueTimeout, one task per group.
	enqueued := make(chan error, 1)
	go func() { enqueued <- s.enq.Enqueue(ctx, tasks) }()
	fired := make(map[int64][]int, len(wins))
	for _, w := range wins {
		fired[w.o.ID] = w.p.layout.Groups
	}
	if err := store.DropStaleRuns(ctx, s.db, fired); err != nil {
		s.log.Warn("drop stale group runs", "occurrences", len(wins), "err", err)
	}
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

// claimAll claims occs, due at the same pass of the firer, and returns the
// fires won. An occurrence prepared ahead whose layout and message have not
// changed since (nearly all of them) is checked and claimed with the others:
// one pipeline of layout checks in Redis, one query of the reminders' edits
// and a few compare-and-set statements in MySQL for thousands of locations.
// Those never prepared are prepared together first. The rest (missed,
// paused, busy at their preparation, changed since, or whose checks
// failed) are claimed one by one, as claim does, each with its own time
// limit. One failing does not cancel another that has already
// won its compare-and-set.
//
// A non-zero at is still to come: the preparations and layouts are checked
// before it, and the reminders' edits and the claims after it. A location
// whose layout changes between its check and the claim fires with the
// layout it was prepared with, which its readers still read right
// (grouping.Index.Members); a subscriber who lands in a group that was
// empty then is reminded from the next fire on, as one who subscribes
// while the tasks are being enqueued always was.
//
// fired is called with the fires won as they are: for each thousand
// claimed together once its transaction commits, and for those claimed
// alone together at the end.
func (s *Scheduler) claimAll(ctx context.Context, occs []store.Occurrence, at time.Time, fired func([]won)) []error {
	preps := make([]*preparation, len(occs))
	s.mu.Lock()
	for i, o := range occs {
		preps[i] = s.ready[o.ID]
		delete(s.ready, o.ID)
	}
	s.mu.Unlock()
	// A preparation still in flight at the instant is waited for: doing it
	// again would only compete with it for the same servers.
	ready := make([]*prepared, len(occs))
	wctx, wcancel := withTimeout(ctx)
	for i, prep := range preps {
		if prep == nil {
			continue
		}
		select {
		case <-prep.done:
			ready[i] = prep.p
		case <-wctx.Done():
		}
	}
	wcancel()
	// Occurrences never prepared (a leader that just took over, a
	// preparation that failed) are prepared now, together; one that fails
	// again is claimed alone, which prepares it once more and reports why.
	var unprepared []store.Occurrence
	var where []int
	for i, o := range occs {
		if ready[i] == nil && !s.clock.Now().After(missAt(o)) {
			unprepared, where = append(unprepared, o), append(where, i)
		}
	}
	fresh := make([]bool, len(occs)) // prepared just now: nothing to check
	if len(unprepared) > 0 {
		ps, _ := s.prepareAll(ctx, unprepared)
		for j, i := range where {
			ready[i], fresh[i] = ps[j], true
		}
	}
	now := s.clock.Now()
	var errs []error
	var alone, check, batch []int // indexes into occs
	for i, o := range occs {
		switch p := ready[i]; {
		case p == nil || p.busy || p.paused || now.After(missAt(o)):
			alone = append(alone, i)
		case fresh[i]:
			batch = append(batch, i)
		default:
			check = append(check, i)
		}
	}
	bctx, bcancel := withTimeout(ctx)
	checked := s.layoutsHold(bctx, occs, ready, check, &alone)
	if at.After(s.clock.Now()) {
		if err := s.waitFor(ctx, at); err != nil {
			bcancel()
			return []error{err}
		}
		now = s.clock.Now()
		bcancel()
		bctx, bcancel = withTimeout(ctx)
	}
	batch, err := s.notEdited(bctx, occs, ready, append(batch, checked...), &alone)
	if err != nil {
		errs = append(errs, err)
	}
	if len(batch) > 0 {
		claims := make([]store.Claim, len(batch))
		byID := make(map[int64]int, len(batch)) // occurrence ID -> index into occs
		for j, i := range batch {
			claims[j] = claimOf(occs[i], ready[i])
			byID[occs[i].ID] = i
		}
		err := store.ClaimOccurrencesEach(bctx, s.db, claims, now, func(ids, taken []int64) {
			var wins []won
			for _, id := range taken {
				o, p := occs[byID[id]], ready[byID[id]]
				if len(p.layout.Groups) == 0 {
					s.log.Info("fired", "occurrence", o.ID, "reminder", o.ReminderID, "location", o.LocationID, "groups", 0)
					continue
				}
				wins = append(wins, won{o, p})
			}
			if n := len(ids) - len(taken); n > 0 {
				s.log.Info("occurrences fired by another coordinator", "occurrences", n)
			}
			if len(wins) > 0 {
				fired(wins)
			}
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("fire %d occurrences: %w", len(batch), err))
		}
	}
	bcancel()
	var wins []won
	var g errgroup.Group
	g.SetLimit(8)
	var mu sync.Mutex
	for _, i := range alone {
		g.Go(func() error {
			p, err := s.claim(ctx, occs[i], ready[i])
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("fire occurrence %d: %w", occs[i].ID, err))
			} else if p != nil {
				wins = append(wins, won{occs[i], p})
			}
			return nil
		})
	}
	_ = g.Wait()
	if len(wins) > 0 {
		fired(wins)
	}
	return errs
}

// layoutsHold returns the indexes of batch whose location's layout in
// Redis is still the one their tasks were built for. The others, and the
// whole batch if the check fails, are added to alone, to be prepared again.
func (s *Scheduler) layoutsHold(ctx context.Context, occs []store.Occurrence, ready []*prepared, batch []int, alone *[]int) []int {
	if len(batch) == 0 {
		return nil
	}
	var locs []grouping.Loc
	for _, i := range batch {
		if o := occs[i]; o.TestUser == "" {
			locs = append(locs, grouping.Loc{Reminder: o.ReminderID, Location: o.LocationID})
		}
	}
	layouts, lerrs := s.index.GroupsOf(ctx, locs)
	kept := batch[:0:0]
	k := 0
	for _, i := range batch {
		layout := testSendLayout
		var lerr error
		if occs[i].TestUser == "" {
			layout, lerr = layouts[k], lerrs[k]
			k++
		}
		if lerr != nil || !ready[i].fits(layout) {
			*alone = append(*alone, i)
			continue
		}
		kept = append(kept, i)
	}
	return kept
}

// notEdited returns the indexes of batch whose reminder was last edited
// when their tasks were built. The others, and the whole batch if the
// query fails, are added to alone, to be prepared again.
func (s *Scheduler) notEdited(ctx context.Context, occs []store.Occurrence, ready []*prepared, batch []int, alone *[]int) ([]int, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	reminders := make([]int64, 0, len(batch))
	for _, i := range batch {
		reminders = append(reminders, occs[i].ReminderID)
	}
	slices.Sort(reminders)
	edits, err := store.ReminderEdits(ctx, s.db, slices.Compact(reminders))
	if err != nil {
		*alone = append(*alone, batch...)
		return nil, err
	}
	kept := batch[:0:0]
	for _, i := range batch {
		if edited, ok := edits[occs[i].ReminderID]; !ok || !ready[i].unedited(edited) {
			*alone = append(*alone, i)
			continue
		}
		kept = append(kept, i)
	}
	return kept, nil
}

// holds reports whether p can still be fired: the location's layout is
// the one its tasks were built for and the reminder was last edited when
// they were built.
func (p *prepared) holds(layout grouping.Layout, edited time.Time) bool {
	return p.fits(layout) && p.unedited(edited)
}

// unedited reports whether the reminder's last edit, edited, is the one
// p's tasks were built from.
func (p *prepared) unedited(edited time.Time) bool { return edited.Equal(p.edited) }

// fits reports whether layout is the one p's tasks were built for.
func (p *prepared) fits(layout grouping.Layout) bool {
	return layout.N == p.layout.N && slices.Equal(layout.Groups, p.layout.Groups)
}

// claimOf is the firing o records when it wins with p.
func claimOf(o store.Occurrence, p *prepared) store.Claim {
	c := store.Claim{ID: o.ID, Groups: len(p.layout.Groups)}
	if p.slots != nil {
		spread := int64(p.spread / time.Second)
		c.Spread = &spread
	}
	return c
}

// claim readies o for its fire and wins its compare-and-set, returning what
// to enqueue, or nil when there is nothing to enqueue (missed, paused, no
// groups, or fired by another coordinator). p is what was prepared for o,
// or nil if nothing was.
func (s *Scheduler) claim(ctx context.Context, o store.Occurrence, p *prepared) (*prepared, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
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
	if p.busy || len(edited) != 1 || !p.holds(layout, edited[0]) {
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
	won, err := store.ClaimOccurrences(ctx, s.db, []store.Claim{claimOf(o, p)}, now)
	if err != nil {
		return nil, err
	}
	if len(won) == 0 {
		s.log.Info("occurrence fired by another coordinator", "occurrence", o.ID)
		return nil, nil
	}
	groups := p.layout.Groups
	if len(groups) == 0 {
		s.log.Info("fired", "occurrence", o.ID, "reminder", o.ReminderID, "location", o.LocationID, "groups", 0)
		return nil, nil
	}
	return p, nil
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
