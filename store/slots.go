package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// A spread send's group runs wait in state pending with their planned slot
// (GroupRun.SlotAt) after their occurrence fired, until the leader's firer
// takes them at their slot: it moves them to queued here, then enqueues
// them. The move is a compare-and-set on each run's state, so that two
// leaders (or a leader and its reaper) never both enqueue a slot, and a run
// that stays pending is found by whichever leader comes next.

// DueSlots returns up to limit pending runs of firing occurrences whose
// slot is at or before now, the earliest first.
func DueSlots(ctx context.Context, db *gorm.DB, now time.Time, limit int) ([]GroupRun, error) {
	var runs []GroupRun
	err := db.WithContext(ctx).Select("group_runs.*").
		Joins("JOIN occurrences o ON o.id = group_runs.occurrence_id").
		Where("group_runs.state = ? AND group_runs.slot_at <= ? AND o.state = ?", RunPending, now, OccFiring).
		Order("group_runs.slot_at, group_runs.occurrence_id, group_runs.group_no").Limit(limit).Find(&runs).Error
	if err != nil {
		return nil, fmt.Errorf("load due slots: %w", err)
	}
	return runs, nil
}

// NextSlot returns the earliest slot after now of a pending run of a firing
// occurrence, or false if there is none.
func NextSlot(ctx context.Context, db *gorm.DB, now time.Time) (time.Time, bool, error) {
	var runs []GroupRun
	err := db.WithContext(ctx).Select("group_runs.slot_at").
		Joins("JOIN occurrences o ON o.id = group_runs.occurrence_id").
		Where("group_runs.state = ? AND group_runs.slot_at > ? AND o.state = ?", RunPending, now, OccFiring).
		Order("group_runs.slot_at").Limit(1).Find(&runs).Error
	if err != nil {
		return time.Time{}, false, fmt.Errorf("load next slot: %w", err)
	}
	if len(runs) == 0 || runs[0].SlotAt == nil {
		return time.Time{}, false, nil
	}
	return *runs[0].SlotAt, true, nil
}

// TakeSlots moves the runs among ids that are still pending to queued at
// now and returns them; runs another coordinator took first are left out.
// Each occurrence's SlotsLateMs is raised to the lateness of the latest
// slot taken, measured against the slot.
func TakeSlots(ctx context.Context, db *gorm.DB, ids []int64, now time.Time) ([]GroupRun, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var taken []GroupRun
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		taken = taken[:0]
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("id IN ? AND state = ?", ids, RunPending).Order("id").Find(&taken).Error; err != nil {
			return err
		}
		if len(taken) == 0 {
			return nil
		}
		got := make([]int64, len(taken))
		late := map[int64]int64{}
		for i, r := range taken {
			got[i] = r.ID
			if r.SlotAt != nil {
				late[r.OccurrenceID] = max(late[r.OccurrenceID], now.Sub(*r.SlotAt).Milliseconds())
			}
		}
		if err := tx.Model(&GroupRun{}).Where("id IN ?", got).
			Updates(map[string]any{"state": RunQueued, "queued_at": now}).Error; err != nil {
			return err
		}
		greatest := "MAX" // SQLite's scalar max of several arguments
		if IsMySQL(tx) {
			greatest = "GREATEST"
		}
		for occ, ms := range late {
			if err := tx.Model(&Occurrence{}).Where("id = ?", occ).
				Update("slots_late_ms", gorm.Expr(greatest+"(slots_late_ms, ?)", max(ms, 0))).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("take slots: %w", err)
	}
	for i := range taken {
		taken[i].State, taken[i].QueuedAt = RunQueued, now
	}
	return taken, nil
}

// Slots is the plan of a spread occurrence: its first and last slot and
// how many of its groups are due by now (their slot has come).
type Slots struct {
	First, Last *time.Time
	Due         int
}

// OccurrenceSlots returns the plan of occurrence occ's slots as of now.
func OccurrenceSlots(ctx context.Context, db *gorm.DB, occ int64, now time.Time) (Slots, error) {
	var out Slots
	// The first and last rows rather than MIN and MAX, which SQLite answers
	// as text.
	for _, end := range []struct {
		order string
		at    **time.Time
	}{{"slot_at", &out.First}, {"slot_at DESC", &out.Last}} {
		var runs []GroupRun
		err := db.WithContext(ctx).Select("slot_at").Where("occurrence_id = ? AND slot_at IS NOT NULL", occ).
			Order(end.order).Limit(1).Find(&runs).Error
		if err != nil {
			return Slots{}, fmt.Errorf("load slots: %w", err)
		}
		if len(runs) == 1 {
			*end.at = runs[0].SlotAt
		}
	}
	var due int64
	if err := db.WithContext(ctx).Model(&GroupRun{}).Where("occurrence_id = ? AND slot_at <= ?", occ, now).
		Count(&due).Error; err != nil {
		return Slots{}, fmt.Errorf("load slots: %w", err)
	}
	out.Due = int(due)
	return out, nil
}
