package push

import (
	"context"
	"fmt"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/store"
)

// disable marks the devices the providers called invalid, one statement per
// distinct reason (usually one or two per chunk).
func (s *Sender) disable(ctx context.Context, items []*item) error {
	// Matching on the token too leaves alone a device the app registered
	// again with a new token while this chunk was being sent.
	byReason := map[string][][]any{}
	for _, it := range items {
		if it.done && it.out.Status == sender.Invalid {
			byReason[it.out.Reason] = append(byReason[it.out.Reason], []any{it.dev.ID, it.dev.Token})
		}
	}
	if len(byReason) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StoreTimeout)
	defer cancel()
	now := s.clock.Now()
	for reason, ids := range byReason {
		err := s.db.WithContext(ctx).Model(&store.Device{}).Where("(id, token) IN ? AND disabled_at IS NULL", ids).
			Updates(map[string]any{"disabled_at": now, "disabled_reason": truncate(reason, 100), "updated_at": now}).Error
		if err != nil {
			return fmt.Errorf("push: disable devices: %w", err)
		}
		s.log.Info("devices disabled", "devices", len(ids), "reason", reason)
	}
	return nil
}

// record writes a chunk's counts (when counts is not nil) and failures in one
// transaction. Rows are keyed by the chunk (its first user) and by device, so
// writing them again for the same chunk replaces them.
func (s *Sender) record(ctx context.Context, b *sender.Batch, counts map[string]sender.Counts, failures []sender.Failure) error {
	if len(counts) == 0 && len(failures) == 0 {
		return nil
	}
	now := s.clock.Now()
	rows := make([]store.DeliveryCount, 0, len(counts))
	for ch, c := range counts {
		rows = append(rows, store.DeliveryCount{OccurrenceID: b.Occurrence, GroupNo: b.Group, Chunk: b.Users[0], Channel: ch,
			Sent: c.Sent, Failed: c.Failed, Expired: c.Expired, Skipped: c.Skipped, UpdatedAt: now})
	}
	fails := make([]store.DeliveryFailure, len(failures))
	for i, f := range failures {
		fails[i] = store.DeliveryFailure{OccurrenceID: b.Occurrence, UserID: f.User, DeviceID: f.Device, GroupNo: b.Group,
			Channel: f.Channel, Reason: truncate(f.Reason, 200), CreatedAt: now}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StoreTimeout)
	defer cancel()
	err := store.Transaction(ctx, s.db, func(tx *gorm.DB) error {
		if len(rows) > 0 {
			if err := tx.Clauses(clause.OnConflict{UpdateAll: true}).Create(&rows).Error; err != nil {
				return err
			}
		}
		if len(fails) > 0 {
			return tx.Clauses(clause.OnConflict{DoUpdates: clause.AssignmentColumns([]string{"group_no", "channel", "reason"})}).
				CreateInBatches(&fails, 500).Error
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("push: record status: %w", err)
	}
	return nil
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
