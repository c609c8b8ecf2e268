package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Firing writes an occurrence's pending group runs by their primary keys:
// the runs are read first (a consistent read, which locks nothing), then
// deleted or updated by ID. A DELETE or UPDATE over the (occurrence_id,
// state) range instead takes next-key locks on it, which the firings of
// neighbouring occurrences, running at the same instant, wait for and
// deadlock on: 5,000 locations fired together spent most of MariaDB's time
// there (docs/benchmarks.md).

// pendingRunsOf returns the IDs of the pending runs of listed's
// occurrences whose group is listed with it (keep) and of those whose group
// is not (stale).
func pendingRunsOf(tx *gorm.DB, listed map[int64][]int) (keep, stale []int64, err error) {
	occs := make([]int64, 0, len(listed))
	sorted := make(map[int64][]int, len(listed))
	for o, groups := range listed {
		occs = append(occs, o)
		sorted[o] = slices.Sorted(slices.Values(groups))
	}
	slices.Sort(occs)
	for chunk := range slices.Chunk(occs, runsPerStatement) {
		var runs []GroupRun
		if err := tx.Select("id", "occurrence_id", "group_no").Where("occurrence_id IN ? AND state = ?", chunk, RunPending).
			Find(&runs).Error; err != nil {
			return nil, nil, err
		}
		for _, r := range runs {
			if _, ok := slices.BinarySearch(sorted[r.OccurrenceID], r.GroupNo); ok {
				keep = append(keep, r.ID)
			} else {
				stale = append(stale, r.ID)
			}
		}
	}
	return keep, stale, nil
}

// runsPerStatement bounds the IDs one statement names.
const runsPerStatement = 1000

// deleteRuns deletes the pending runs ids.
func deleteRuns(tx *gorm.DB, ids []int64) error {
	for c := range slices.Chunk(ids, runsPerStatement) {
		if err := tx.Where("id IN ? AND state = ?", c, RunPending).Delete(&GroupRun{}).Error; err != nil {
			return err
		}
	}
	return nil
}

// QueueRunsOf marks the pending runs of fired's occurrences queued at now,
// each occurrence's of the groups it fired, and deletes those of groups no
// longer listed (the index was rebuilt smaller since its preparation),
// which are not part of its firing: a few statements for thousands of
// small locations.
// Occurrences are written together in transactions of about
// runsPerStatement groups, each all or nothing.
func QueueRunsOf(ctx context.Context, db *gorm.DB, fired map[int64][]int, now time.Time) error {
	occs := slices.Sorted(maps.Keys(fired))
	for len(occs) > 0 {
		batch, runs := map[int64][]int{}, 0
		for len(occs) > 0 && (len(batch) == 0 || runs+len(fired[occs[0]]) <= runsPerStatement) {
			batch[occs[0]] = fired[occs[0]]
			runs += len(fired[occs[0]])
			occs = occs[1:]
		}
		err := Transaction(ctx, db, func(tx *gorm.DB) error {
			keep, stale, err := pendingRunsOf(tx, batch)
			if err != nil {
				return err
			}
			if err := deleteRuns(tx, stale); err != nil {
				return err
			}
			for c := range slices.Chunk(keep, runsPerStatement) {
				if err := tx.Model(&GroupRun{}).Where("id IN ? AND state = ?", c, RunPending).
					Updates(map[string]any{"state": RunQueued, "queued_at": now}).Error; err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("mark runs queued: %w", err)
		}
	}
	return nil
}

// DropStaleRuns deletes occurrence's pending runs of groups no longer
// listed, as QueueRunsOf does, leaving the others pending (a spread send's,
// queued at their slots).
func DropStaleRuns(ctx context.Context, db *gorm.DB, occurrence int64, groups []int) error {
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		_, stale, err := pendingRunsOf(tx, map[int64][]int{occurrence: groups})
		if err != nil {
			return err
		}
		return deleteRuns(tx, stale)
	})
	if err != nil {
		return fmt.Errorf("drop stale runs: %w", err)
	}
	return nil
}

// CountThrough locks, in tx, the record of the status counts of run
// (occurrence, group), returns the last user of the chunks counted so far
// ("" before the first), and moves it to last if last comes after it.
// found is false when there is no such run (a send not made for a group
// run), whose chunks are then not told apart.
func CountThrough(tx *gorm.DB, occurrence int64, group int, last string) (through string, found bool, err error) {
	var runs []GroupRun
	if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Select("id", "counted_through").
		Where("occurrence_id = ? AND group_no = ?", occurrence, group).Limit(1).Find(&runs).Error; err != nil {
		return "", false, fmt.Errorf("find group run: %w", err)
	}
	if len(runs) == 0 {
		return "", false, nil
	}
	through = runs[0].CountedThrough
	if last > through {
		if err := tx.Model(&GroupRun{}).Where("id = ?", runs[0].ID).Update("counted_through", last).Error; err != nil {
			return "", false, fmt.Errorf("mark chunk counted: %w", err)
		}
	}
	return through, true, nil
}
