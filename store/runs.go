package store

import (
	"context"
	"fmt"
	"maps"
	"slices"

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

// stalePendingRuns returns the IDs of the pending runs of listed's
// occurrences whose group is not listed with it.
func stalePendingRuns(tx *gorm.DB, listed map[int64][]int) (stale []int64, err error) {
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
			return nil, err
		}
		for _, r := range runs {
			if _, ok := slices.BinarySearch(sorted[r.OccurrenceID], r.GroupNo); !ok {
				stale = append(stale, r.ID)
			}
		}
	}
	return stale, nil
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

// DropStaleRuns deletes the pending runs of listed's occurrences whose
// group is not listed with it (the index was rebuilt smaller since the
// occurrence's preparation): they are not part of its firing. The listed
// runs stay pending: a pending run of a firing occurrence has its task on
// the queue, or (a spread send's) waits for its slot, so a fire at the
// instant writes none of them; thousands of small locations cost a read of
// their runs and no update. Occurrences are read and written together in
// transactions of about runsPerStatement groups, each all or nothing.
func DropStaleRuns(ctx context.Context, db *gorm.DB, listed map[int64][]int) error {
	occs := slices.Sorted(maps.Keys(listed))
	for len(occs) > 0 {
		batch, runs := map[int64][]int{}, 0
		for len(occs) > 0 && (len(batch) == 0 || runs+len(listed[occs[0]]) <= runsPerStatement) {
			batch[occs[0]] = listed[occs[0]]
			runs += len(listed[occs[0]])
			occs = occs[1:]
		}
		err := Transaction(ctx, db, func(tx *gorm.DB) error {
			stale, err := stalePendingRuns(tx, batch)
			if err != nil {
				return err
			}
			return deleteRuns(tx, stale)
		})
		if err != nil {
			return fmt.Errorf("drop stale runs: %w", err)
		}
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
