package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/store"
)

// Injects: a firing spread occurrence with three runs at slots 20 s apart
// and a scheduled one whose run's slot has passed, on MariaDB and on
// SQLite; the due runs are taken twice (two coordinators racing). Checks:
// only the firing occurrence's runs whose slot has come are due; the next
// slot is the first still ahead; the first take moves them to queued and
// records their lateness against the most overdue slot, the second takes
// nothing; the plan reports first and last slot and the groups due.
func TestSlotsAreTakenOnce(t *testing.T) {
	for name, db := range bothStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := ctxT(t)
			fireAt := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			o := store.Occurrence{ReminderID: 1, LocationID: 1, FireAt: fireAt, ExpiresAt: fireAt.Add(time.Hour), State: store.OccFiring, SpreadS: 60}
			later := store.Occurrence{ReminderID: 1, LocationID: 2, FireAt: fireAt, ExpiresAt: fireAt.Add(time.Hour), State: store.OccScheduled}
			require.NoError(t, db.Create(&o).Error)
			require.NoError(t, db.Create(&later).Error)
			run := func(occ int64, g int, slot time.Time) store.GroupRun {
				r := store.GroupRun{OccurrenceID: occ, GroupNo: g, Layout: 4, State: store.RunPending, Attempts: 1, QueuedAt: fireAt, SlotAt: &slot}
				require.NoError(t, db.Create(&r).Error)
				return r
			}
			for i := range 3 {
				run(o.ID, i, fireAt.Add(time.Duration(i)*20*time.Second))
			}
			run(later.ID, 0, fireAt)

			now := fireAt.Add(25 * time.Second)
			due, err := store.DueSlots(ctx, db, now, 10)
			require.NoError(t, err)
			require.Len(t, due, 2)
			for i, r := range due {
				require.Equal(t, o.ID, r.OccurrenceID)
				require.Equal(t, i, r.GroupNo, "earliest slot first")
			}
			next, ok, err := store.NextSlot(ctx, db, now)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, fireAt.Add(40*time.Second), next.UTC())

			ids := []int64{due[0].ID, due[1].ID}
			taken, err := store.TakeSlots(ctx, db, ids, now)
			require.NoError(t, err)
			require.Len(t, taken, 2)
			again, err := store.TakeSlots(ctx, db, ids, now.Add(time.Second))
			require.NoError(t, err)
			require.Empty(t, again, "a slot taken is not taken again")
			for _, id := range ids {
				var r store.GroupRun
				require.NoError(t, db.First(&r, id).Error)
				require.Equal(t, store.RunQueued, r.State)
				require.True(t, now.Equal(r.QueuedAt))
			}
			require.NoError(t, db.First(&o, o.ID).Error)
			require.EqualValues(t, 25000, o.SlotsLateMs, "late against the most overdue slot taken")

			sl, err := store.OccurrenceSlots(ctx, db, o.ID, now)
			require.NoError(t, err)
			require.Equal(t, 2, sl.Due)
			require.Equal(t, fireAt, sl.First.UTC())
			require.Equal(t, fireAt.Add(40*time.Second), sl.Last.UTC())
		})
	}
}
