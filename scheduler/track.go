package scheduler

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/chime-dev/chime/ack"
	"github.com/chime-dev/chime/store"
)

// Track reads one batch of acks (waiting up to block for them) and records
// it in MySQL in one transaction.
func (s *Scheduler) Track(ctx context.Context, block time.Duration) error {
	acks, err := s.acks.Read(ctx, 1000, block)
	if err != nil || len(acks) == 0 {
		return err
	}
	tctx, cancel := withTimeout(ctx)
	defer cancel()
	err = store.Transaction(tctx, s.db, func(tx *gorm.DB) error {
		for _, a := range acks {
			if err := s.apply(tx, a); err != nil {
				return fmt.Errorf("record %s ack of occurrence %d group %d: %w", a.Type, a.Group.Occurrence, a.Group.Group, err)
			}
		}
		return nil
	})
	if err != nil {
		s.acks.Rewind()
		return err
	}
	return s.acks.Done(ctx, acks)
}

func (s *Scheduler) apply(tx *gorm.DB, a ack.Ack) error {
	run := tx.Model(&store.GroupRun{}).Where("occurrence_id = ? AND group_no = ?", a.Group.Occurrence, a.Group.Group)
	switch a.Type {
	case ack.TypeStart:
		return run.Where("state IN ?", []string{store.RunQueued, store.RunStarted}).
			Updates(map[string]any{"state": store.RunStarted, "worker": a.Worker, "started_at": a.At}).Error
	case ack.TypeRelease:
		return run.Where("state = ?", store.RunStarted).
			Updates(map[string]any{"state": store.RunQueued, "queued_at": a.At, "started_at": nil}).Error
	case ack.TypeFinish:
		state := store.RunFinished
		if a.State == ack.StateExpired {
			state = store.RunExpired
		}
		res := run.Where("state NOT IN ?", []string{store.RunFinished, store.RunExpired}).
			Updates(map[string]any{"state": state, "worker": a.Worker, "sent": a.Sent, "failed": a.Failed,
				"expired": a.Expired, "finished_at": a.At})
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		err := tx.Model(&store.Occurrence{}).Where("id = ?", a.Group.Occurrence).Updates(map[string]any{
			"groups_done": gorm.Expr("groups_done + 1"),
			"delivered":   gorm.Expr("delivered + ?", a.Sent),
			"failed":      gorm.Expr("failed + ?", a.Failed),
			"expired":     gorm.Expr("expired + ?", a.Expired),
		}).Error
		if err != nil {
			return err
		}
		return tx.Model(&store.Occurrence{}).
			Where("id = ? AND state = ? AND groups_done >= groups_total", a.Group.Occurrence, store.OccFiring).
			Updates(map[string]any{"state": store.OccDone, "done_at": a.At}).Error
	}
	return nil
}
