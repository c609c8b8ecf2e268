package scheduler

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/chime-dev/chime/metrics"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/store"
)

// A spread send (a reminder with a spread) delivers an occurrence's groups
// at planned slots over the spread after the instant instead of all at it,
// so that the app's own backend sees a ramp, not a spike:
//
//	slot(i) = instant + spread × (i + φ) / n
//
// for the i-th of the occurrence's n non-empty groups, where φ in [0, 1)
// is a hash of the reminder and the location. The slots of one occurrence
// are evenly spaced; φ staggers the occurrences of many small locations due
// at the same instant (one group each) across the spread instead of putting
// them all at its start. Every slot is before instant + spread, which is at
// most the validity window's end.
//
// The preparation stores each run's slot (group_runs.slot_at). At the
// instant the compare-and-set moves the occurrence to firing as usual, but
// its runs stay pending; the firer then takes the runs whose slot has come
// (store.TakeSlots: pending → queued, a compare-and-set per run) and
// enqueues them, packing small groups only with groups of the same slot,
// and sleeps on its own timer until the next slot. What is pending is in
// MySQL, so a leader that takes over mid-spread enqueues the slots not
// taken yet, each once; a slot taken whose enqueue was lost is enqueued
// again by the reaper after QueueTimeout, under the same task ID.

// slots returns the planned slots of n groups spread over spread after
// instant, with phase phi.
func slots(instant time.Time, spread time.Duration, n int, phi float64) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = instant.Add(time.Duration((float64(i) + phi) / float64(n) * float64(spread))).Truncate(time.Millisecond)
	}
	return out
}

// phase is φ for the occurrences of reminder at location: the same at
// every preparation and on every coordinator.
func phase(reminder, location int64) float64 {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(reminder))
	binary.LittleEndian.PutUint64(b[8:], uint64(location))
	return float64(xxhash.Sum64(b[:])>>11) / (1 << 53)
}

// slotBatch bounds the runs taken in one pass of the firer.
const slotBatch = 1000

// FireSlots enqueues the groups of spread occurrences whose slot has come,
// as the firer does between instants.
func (s *Scheduler) FireSlots(ctx context.Context) error {
	_, err := s.fireSlots(ctx, s.clock.Now().Add(time.Hour))
	return err
}

// fireSlots enqueues the groups of spread occurrences whose slot has come
// and returns when the next slot comes (at the latest, latest).
func (s *Scheduler) fireSlots(ctx context.Context, latest time.Time) (time.Time, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	now := s.clock.Now()
	due, err := store.DueSlots(ctx, s.db, now, slotBatch)
	if err != nil {
		return latest, err
	}
	var errs []error
	if len(due) > 0 {
		if err := s.enqueueSlots(ctx, due, now); err != nil {
			errs = append(errs, err)
		}
		if len(due) == slotBatch {
			return now, errors.Join(errs...) // more are due behind this page
		}
	}
	s.pruneSpreading(now)
	next, ok, err := store.NextSlot(ctx, s.db, now)
	if err != nil || !ok || next.After(latest) {
		return latest, errors.Join(append(errs, err)...)
	}
	return next, errors.Join(errs...)
}

// enqueueSlots takes the due runs and enqueues them, one pack per slot.
func (s *Scheduler) enqueueSlots(ctx context.Context, due []store.GroupRun, now time.Time) error {
	ids := make([]int64, len(due))
	for i, r := range due {
		ids[i] = r.ID
	}
	// Taken before the enqueue: a coordinator that dies in between leaves
	// them queued without a task, which the reaper recovers; the other
	// order could enqueue a slot twice.
	taken, err := store.TakeSlots(ctx, s.db, ids, now)
	if err != nil || len(taken) == 0 {
		return err
	}
	// Taken: finish the enqueue even if leadership ends now, or the next
	// leader would find these groups only after QueueTimeout.
	ctx, cancel := withTimeout(context.WithoutCancel(ctx))
	defer cancel()
	slices.SortStableFunc(taken, func(a, b store.GroupRun) int { return a.SlotAt.Compare(*b.SlotAt) })
	ps, sizes, err := s.slotPayloads(ctx, taken)
	if err != nil {
		return fmt.Errorf("build slot tasks: %w", err) // the reaper enqueues them after QueueTimeout
	}
	var tasks []queue.Task
	var slotsAt []time.Time
	for i := 0; i < len(taken); {
		j := i + 1
		for j < len(taken) && taken[j].SlotAt.Equal(*taken[i].SlotAt) {
			j++
		}
		t, err := queue.Pack(ps[i:j], sizes[i:j], s.index.Target(), queue.DefaultTaskParts)
		if err != nil {
			return err
		}
		tasks = append(tasks, t...)
		slotsAt = append(slotsAt, *taken[i].SlotAt)
		i = j
	}
	if err := s.enq.Enqueue(ctx, tasks); err != nil {
		return err
	}
	queued := s.clock.Now()
	for _, at := range slotsAt {
		metrics.SlotQueued(queued.Sub(at))
	}
	s.log.Info("spread slots queued", "occurrence", taken[0].OccurrenceID, "groups", len(taken), "slots", len(slotsAt),
		"tasks", len(tasks), "late_ms", queued.Sub(slotsAt[0]).Milliseconds())
	return nil
}

// slotPayloads returns the tasks' payloads of runs and their groups' sizes:
// those this coordinator prepared (the message as it was at the instant),
// or, after a change of leader, built again from MySQL as the reaper
// builds them.
func (s *Scheduler) slotPayloads(ctx context.Context, runs []store.GroupRun) ([]queue.Payload, []int, error) {
	ps := make([]queue.Payload, len(runs))
	sizes := make([]int, len(runs))
	var missing []int
	s.mu.Lock()
	for i, r := range runs {
		sizes[i] = s.index.Target() // unknown: a task of its own
		p := s.spreading[r.OccurrenceID]
		k := -1
		if p != nil && p.layout.N == r.Layout {
			k = slices.Index(p.layout.Groups, r.GroupNo)
		}
		if k < 0 {
			missing = append(missing, i)
			continue
		}
		ps[i], sizes[i] = p.payloads[k], p.layout.Sizes[k]
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return ps, sizes, nil
	}
	lost := make([]store.GroupRun, len(missing))
	for j, i := range missing {
		lost[j] = runs[i]
	}
	built, err := s.payloads(ctx, lost)
	if err != nil {
		return nil, nil, err
	}
	for j, i := range missing {
		ps[i] = built[j]
	}
	return ps, sizes, nil
}

// keepSpreading keeps what was prepared for a spread occurrence that fired,
// for its later slots.
func (s *Scheduler) keepSpreading(w won) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spreading[w.o.ID] = w.p
}

// pruneSpreading forgets the spread occurrences whose last slot has passed.
func (s *Scheduler) pruneSpreading(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, p := range s.spreading {
		if len(p.slots) == 0 || p.slots[len(p.slots)-1].Before(now) {
			delete(s.spreading, id)
		}
	}
}

// spreadFired readies the later slots of spread occurrence w, whose
// compare-and-set was won: runs of groups no longer listed are dropped
// before any slot of it is taken, and its tasks are kept for its slots.
func (s *Scheduler) spreadFired(ctx context.Context, w won) error {
	ctx, cancel := withTimeout(context.WithoutCancel(ctx))
	defer cancel()
	if err := store.DropStaleRuns(ctx, s.db, map[int64][]int{w.o.ID: w.p.layout.Groups}); err != nil {
		return err
	}
	s.keepSpreading(w)
	metrics.FiredSpread()
	s.log.Info("fired spread", "occurrence", w.o.ID, "reminder", w.o.ReminderID, "location", w.o.LocationID,
		"groups", len(w.p.layout.Groups), "layout", w.p.layout.N, "spread", w.p.spread,
		"first_slot", w.p.slots[0], "last_slot", w.p.slots[len(w.p.slots)-1])
	return nil
}
