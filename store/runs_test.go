package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/store"
)

// Injects: an occurrence whose runs were prepared for groups 0 to 3 (group
// 3 already started by a worker) and fired with groups 0 and 2 only (the
// index was rebuilt smaller since), beside a neighbouring occurrence with
// pending runs of its own; then a spread occurrence's stale runs dropped.
// Checks: DropStaleRuns deletes 1, leaves 0 and 2 pending (on the queue,
// for a firing occurrence), the started run and the neighbour's runs
// alone, in one call for several occurrences as for one; an empty group
// list drops every pending run.
func TestFiringWritesItsOwnRuns(t *testing.T) {
	db := testenv.New(t).DB
	ctx := ctxT(t)
	fireAt := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	occ := func(loc int64) store.Occurrence {
		o := store.Occurrence{ReminderID: 1, LocationID: loc, FireAt: fireAt, ExpiresAt: fireAt.Add(time.Hour), State: store.OccFiring}
		require.NoError(t, db.Create(&o).Error)
		for g := range 4 {
			state := store.RunPending
			if g == 3 {
				state = store.RunStarted
			}
			require.NoError(t, db.Create(&store.GroupRun{OccurrenceID: o.ID, GroupNo: g, Layout: 4, State: state, Attempts: 1, QueuedAt: fireAt}).Error)
		}
		return o
	}
	states := func(o store.Occurrence) map[int]string {
		var runs []store.GroupRun
		require.NoError(t, db.Where("occurrence_id = ?", o.ID).Find(&runs).Error)
		out := map[int]string{}
		for _, r := range runs {
			out[r.GroupNo] = r.State
		}
		return out
	}
	a, b := occ(1), occ(2)
	require.NoError(t, store.DropStaleRuns(ctx, db, map[int64][]int{a.ID: {2, 0}}))
	require.Equal(t, map[int]string{0: store.RunPending, 2: store.RunPending, 3: store.RunStarted}, states(a))
	require.Equal(t, map[int]string{0: store.RunPending, 1: store.RunPending, 2: store.RunPending, 3: store.RunStarted}, states(b))
	var kept store.GroupRun
	require.NoError(t, db.Where("occurrence_id = ? AND group_no = 0", a.ID).First(&kept).Error)
	require.True(t, kept.QueuedAt.Equal(fireAt), "a kept run is not written")

	c := occ(3)
	require.NoError(t, store.DropStaleRuns(ctx, db, map[int64][]int{b.ID: {1}, c.ID: {0, 1, 2}}))
	require.Equal(t, map[int]string{1: store.RunPending, 3: store.RunStarted}, states(b))
	require.Equal(t, map[int]string{0: store.RunPending, 1: store.RunPending, 2: store.RunPending, 3: store.RunStarted}, states(c))
	require.NoError(t, store.DropStaleRuns(ctx, db, map[int64][]int{b.ID: nil}))
	require.Equal(t, map[int]string{3: store.RunStarted}, states(b), "an empty list drops every pending run")
}
