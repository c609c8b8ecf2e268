package scheduler

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/metrics"
	"github.com/chime-dev/chime/policy"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/store"
)

// Reap puts back on the queue the groups whose worker went silent: started
// more than AckTimeout ago without a finish ack (as a new attempt), or queued
// more than QueueTimeout ago without a start ack (under the same task ID).
func (s *Scheduler) Reap(ctx context.Context) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	now := s.clock.Now()
	var stale, waiting []store.GroupRun
	if err := s.db.WithContext(ctx).Where("state = ? AND started_at < ?", store.RunStarted, now.Add(-s.cfg.AckTimeout)).
		Limit(1000).Find(&stale).Error; err != nil {
		return fmt.Errorf("reap: %w", err)
	}
	// A pending run of a firing occurrence is on the queue since the fire
	// (its queued_at is its preparation's), or lost if the coordinator
	// died between the compare-and-set and the enqueue. A spread send's
	// pending run counts only once its slot is as old: until then it waits
	// for the firer.
	cutoff := now.Add(-s.cfg.QueueTimeout)
	if err := s.db.WithContext(ctx).Select("group_runs.*").
		Joins("JOIN occurrences o ON o.id = group_runs.occurrence_id").
		Where("group_runs.state IN ? AND group_runs.queued_at < ? AND o.state = ? AND (o.fired_at IS NULL OR o.fired_at < ?)",
			[]string{store.RunQueued, store.RunPending}, cutoff, store.OccFiring, cutoff).
		Where("group_runs.state = ? OR group_runs.slot_at IS NULL OR group_runs.slot_at < ?", store.RunQueued, cutoff).
		Limit(1000).Find(&waiting).Error; err != nil {
		return fmt.Errorf("reap: %w", err)
	}
	var again []store.GroupRun
	for _, r := range stale {
		res := s.db.WithContext(ctx).Model(&store.GroupRun{}).
			Where("id = ? AND state = ? AND attempts = ?", r.ID, store.RunStarted, r.Attempts).
			Updates(map[string]any{"state": store.RunQueued, "attempts": r.Attempts + 1, "queued_at": now, "started_at": nil})
		if res.Error != nil {
			return fmt.Errorf("reap: %w", res.Error)
		}
		if res.RowsAffected == 1 {
			r.Attempts++
			again = append(again, r)
			metrics.Requeued("ack_timeout")
			s.log.Warn("no finish ack in time; group queued again", "occurrence", r.OccurrenceID, "group", r.GroupNo,
				"worker", r.Worker, "attempt", r.Attempts)
		}
	}
	for _, r := range waiting {
		res := s.db.WithContext(ctx).Model(&store.GroupRun{}).
			Where("id = ? AND state = ? AND attempts = ?", r.ID, r.State, r.Attempts).
			Updates(map[string]any{"state": store.RunQueued, "queued_at": now})
		if res.Error != nil {
			return fmt.Errorf("reap: %w", res.Error)
		}
		if res.RowsAffected == 1 {
			again = append(again, r)
			metrics.Requeued("queue_timeout")
		}
	}
	if len(again) == 0 {
		return nil
	}
	ps, err := s.payloads(ctx, again)
	if err != nil {
		return fmt.Errorf("reap: %w", err)
	}
	// Requeued groups go one per task: each has its own task ID, which
	// makes enqueueing it again a no-op while its task exists.
	return s.enq.Enqueue(ctx, queue.Single(ps))
}

// payloads builds the tasks of runs, loading their occurrences, reminders
// and locations once each.
func (s *Scheduler) payloads(ctx context.Context, runs []store.GroupRun) ([]queue.Payload, error) {
	occs := map[int64]store.Occurrence{}
	data := map[int64]json.RawMessage{}
	rems := map[int64]store.Reminder{}
	pols := map[int64]*message.Policy{}
	locs := map[int64]store.Location{}
	var out []queue.Payload
	for _, run := range runs {
		o, ok := occs[run.OccurrenceID]
		if !ok {
			if err := s.db.WithContext(ctx).First(&o, run.OccurrenceID).Error; err != nil {
				return nil, err
			}
			occs[o.ID] = o
			d, err := s.eventData(ctx, o)
			if err != nil {
				return nil, err
			}
			data[o.ID] = d
		}
		r, ok := rems[o.ReminderID]
		if !ok {
			if err := s.db.WithContext(ctx).First(&r, o.ReminderID).Error; err != nil {
				return nil, err
			}
			rems[r.ID] = r
			pol, err := s.policyOf(ctx, r)
			if err != nil {
				return nil, err
			}
			pols[r.ID] = pol
		}
		l, ok := locs[o.LocationID]
		if !ok {
			if err := s.db.WithContext(ctx).First(&l, o.LocationID).Error; err != nil {
				return nil, err
			}
			locs[l.ID] = l
		}
		p := payload(o, r, l, run.GroupNo, run.Layout, run.Attempts)
		p.Data = data[o.ID]
		p.Policy = pols[r.ID]
		if run.GroupNo < 0 {
			// A chunk held by quiet hours, released as a group of its own.
			h, err := store.QuietHoldOf(ctx, s.db, run.GroupNo)
			if err != nil {
				return nil, fmt.Errorf("load quiet hold of group %d: %w", run.GroupNo, err)
			}
			p.Users = policy.HeldUsers(h)
		}
		out = append(out, p)
	}
	return out, nil
}
