package scheduler

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/chime-dev/chime/ack"
	"github.com/chime-dev/chime/store"
)

// trackBatch bounds the acks recorded in one transaction.
const trackBatch = 5000

// Track reads one batch of acks (waiting up to block for them) and records
// it in MySQL in one transaction.
//
// Acks are written in batches because a fire of a million users produces
// thousands of them in a second, while workers are using the same CPUs: the
// tracker lingers briefly so a batch fills, keeps only the last word on each
// group (a finish makes its start redundant), and adds a batch's finished
// groups to each occurrence in one statement.
func (s *Scheduler) Track(ctx context.Context, block time.Duration) error {
	acks, err := s.acks.Read(ctx, trackBatch, block)
	if err != nil || len(acks) == 0 {
		return err
	}
	if len(acks) < trackBatch && s.cfg.TrackLinger > 0 {
		select {
		case <-ctx.Done():
			s.acks.Rewind()
			return nil
		case <-s.clock.After(s.cfg.TrackLinger):
		}
		more, err := s.acks.Read(ctx, int64(trackBatch-len(acks)), -1)
		if err != nil {
			s.acks.Rewind()
			return err
		}
		acks = append(acks, more...)
	}
	tctx, cancel := withTimeout(ctx)
	defer cancel()
	err = store.Transaction(tctx, s.db, func(tx *gorm.DB) error { return s.record(tx, acks) })
	if err != nil {
		s.acks.Rewind()
		return err
	}
	return s.acks.Done(ctx, acks)
}

type occDelta struct {
	groups                     int
	delivered, failed, expired int64
	skipped, quiet, capped     int64
	at                         time.Time
}

// record applies a batch of acks, in stream order, keeping per group only
// what the last ack says and the start time.
func (s *Scheduler) record(tx *gorm.DB, acks []ack.Ack) error {
	last := make(map[ack.Group]int, len(acks))
	started := make(map[ack.Group]time.Time)
	for i, a := range acks {
		if a.Type == ack.TypeStart {
			started[a.Group] = a.At
		}
		if prev, ok := last[a.Group]; ok && acks[prev].Type == ack.TypeFinish {
			continue // a finish is final; a later copy of the task only repeats it
		}
		last[a.Group] = i
	}
	deltas := map[int64]*occDelta{}
	for i, a := range acks {
		if last[a.Group] != i {
			continue
		}
		run := tx.Model(&store.GroupRun{}).Where("occurrence_id = ? AND group_no = ?", a.Group.Occurrence, a.Group.Group)
		var err error
		switch a.Type {
		case ack.TypeStart:
			err = run.Where("state IN ?", []string{store.RunPending, store.RunQueued, store.RunStarted}).
				Updates(map[string]any{"state": store.RunStarted, "worker": a.Worker, "started_at": a.At}).Error
		case ack.TypeRelease:
			err = run.Where("state = ?", store.RunStarted).
				Updates(map[string]any{"state": store.RunQueued, "queued_at": a.At, "started_at": nil}).Error
		case ack.TypeFinish:
			state := store.RunFinished
			if a.State == ack.StateExpired {
				state = store.RunExpired
			}
			fields := map[string]any{"state": state, "worker": a.Worker, "sent": a.Sent, "failed": a.Failed,
				"expired": a.Expired, "finished_at": a.At,
				"skipped_preference": a.Skips.Preference, "quiet": a.Skips.Quiet, "capped": a.Skips.Capped}
			if t, ok := started[a.Group]; ok {
				fields["started_at"] = t
			}
			res := run.Where("state NOT IN ?", []string{store.RunFinished, store.RunExpired}).Updates(fields)
			err = res.Error
			if err == nil && res.RowsAffected == 1 {
				d := deltas[a.Group.Occurrence]
				if d == nil {
					d = &occDelta{}
					deltas[a.Group.Occurrence] = d
				}
				d.groups++
				d.delivered += int64(a.Sent)
				d.failed += int64(a.Failed)
				d.expired += int64(a.Expired)
				d.skipped += int64(a.Skips.Preference)
				d.quiet += int64(a.Skips.Quiet)
				d.capped += int64(a.Skips.Capped)
				if a.At.After(d.at) {
					d.at = a.At
				}
			}
		}
		if err != nil {
			return fmt.Errorf("record %s ack of occurrence %d group %d: %w", a.Type, a.Group.Occurrence, a.Group.Group, err)
		}
	}
	for occ, d := range deltas {
		err := tx.Model(&store.Occurrence{}).Where("id = ?", occ).Updates(map[string]any{
			"groups_done": gorm.Expr("groups_done + ?", d.groups),
			"delivered":   gorm.Expr("delivered + ?", d.delivered),
			"failed":      gorm.Expr("failed + ?", d.failed),
			"expired":     gorm.Expr("expired + ?", d.expired),

			"skipped_preference": gorm.Expr("skipped_preference + ?", d.skipped),
			"quiet":              gorm.Expr("quiet + ?", d.quiet),
			"capped":             gorm.Expr("capped + ?", d.capped),
		}).Error
		if err == nil {
			err = tx.Model(&store.Occurrence{}).
				Where("id = ? AND state = ? AND groups_done >= groups_total", occ, store.OccFiring).
				Updates(map[string]any{"state": store.OccDone, "done_at": d.at}).Error
		}
		if err != nil {
			return fmt.Errorf("record counts of occurrence %d: %w", occ, err)
		}
	}
	return nil
}
