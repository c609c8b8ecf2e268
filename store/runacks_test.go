package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/store"
)

// Injects: a batch of acks over 2,500 runs of one occurrence (more than
// one statement's worth), then a second batch that repeats a finish, starts
// a finished run, releases a started one and finishes a run that is not
// there, and a batch naming one run twice. Checks: every run ends in the
// state and counts of its ack, with the start instant of a start given with
// its finish; a finish applies once (the second is not returned, so not
// counted again) and a run named twice in one batch once; a start or a
// release leaves a finished run alone; the occurrence's counts are the sum
// of the finishes applied, and it is done, at the last finish, only once
// all its groups are. On MariaDB and on SQLite (the embedded store).
func TestRunAcksRecordedInBatches(t *testing.T) {
	for name, db := range bothStores(t) {
		t.Run(name, func(t *testing.T) { runAcksRecorded(t, db) })
	}
}

// runAcksRecorded is TestRunAcksRecordedInBatches on db: MariaDB's
// statements of a thousand rows, or SQLite's of one.
func runAcksRecorded(t *testing.T, db *gorm.DB) {
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 2500
	o := store.Occurrence{ReminderID: 1, LocationID: 1, FireAt: at, ExpiresAt: at.Add(time.Hour), State: store.OccFiring, GroupsTotal: n}
	require.NoError(t, db.Create(&o).Error)
	runs := make([]store.GroupRun, n)
	for g := range runs {
		runs[g] = store.GroupRun{OccurrenceID: o.ID, GroupNo: g, Layout: n, State: store.RunQueued, Attempts: 1, QueuedAt: at}
	}
	require.NoError(t, db.CreateInBatches(runs, 500).Error)
	run := func(g int) store.GroupRun {
		var r store.GroupRun
		require.NoError(t, db.Where("occurrence_id = ? AND group_no = ?", o.ID, g).First(&r).Error)
		return r
	}
	// Acks' instants have milliseconds, as workers' do.
	when := func(sec int) time.Time { return at.Add(time.Duration(sec)*time.Second + 123*time.Millisecond) }
	ackOf := func(g int, sec int) store.RunAck {
		return store.RunAck{Occurrence: o.ID, Group: g, Worker: "w", At: when(sec)}
	}
	tx := func(fn func(tx *gorm.DB) error) { require.NoError(t, db.Transaction(fn)) }

	// Groups 0 to 9 only start; all others finish, every third expired,
	// the even ones with their start in the batch.
	var starts []store.RunAck
	var fins []store.RunFinish
	for g := range n {
		if g < 10 {
			starts = append(starts, ackOf(g, 1))
			continue
		}
		f := store.RunFinish{RunAck: ackOf(g, 2+g%5), Expired: g%3 == 0, Sent: g, Failed: 1, Unsent: 2, SkippedPreference: 3, Quiet: 4, Capped: 5}
		if g%2 == 0 {
			begun := when(1)
			f.StartedAt = &begun
		}
		fins = append(fins, f)
	}
	var applied []store.RunFinish
	tx(func(tx *gorm.DB) error {
		if err := store.StartRuns(tx, starts); err != nil {
			return err
		}
		var err error
		applied, err = store.FinishRuns(tx, fins)
		return err
	})
	require.Len(t, applied, n-10)
	r := run(3)
	require.Equal(t, store.RunStarted, r.State)
	require.Equal(t, "w", r.Worker)
	require.True(t, r.StartedAt.Equal(when(1)))
	for _, g := range []int{10, 11, 12, 1500, 2499} {
		r := run(g)
		want := store.RunFinished
		if g%3 == 0 {
			want = store.RunExpired
		}
		require.Equal(t, want, r.State, "group %d", g)
		require.Equal(t, []int{g, 1, 2, 3, 4, 5}, []int{r.Sent, r.Failed, r.Expired, r.SkippedPreference, r.Quiet, r.Capped}, "group %d", g)
		require.True(t, r.FinishedAt.Equal(when(2+g%5)), "group %d", g)
		if g%2 == 0 {
			require.True(t, r.StartedAt.Equal(when(1)), "group %d", g)
		} else {
			require.Nil(t, r.StartedAt, "group %d: no start given, none set", g)
		}
	}

	// The second batch: group 10 finished again (not applied), group 11
	// started and released (left finished), group 3 released, group 4
	// finished, a group that does not exist finished.
	tx(func(tx *gorm.DB) error {
		if err := store.StartRuns(tx, []store.RunAck{ackOf(11, 9)}); err != nil {
			return err
		}
		if err := store.ReleaseRuns(tx, []store.RunAck{ackOf(3, 9), ackOf(11, 9)}); err != nil {
			return err
		}
		var err error
		applied, err = store.FinishRuns(tx, []store.RunFinish{
			{RunAck: ackOf(4, 9), Sent: 7},
			{RunAck: ackOf(10, 9), Sent: 99},
			{RunAck: ackOf(n+1, 9), Sent: 99},
		})
		return err
	})
	require.Len(t, applied, 1)
	require.Equal(t, 4, applied[0].Group)
	r = run(4)
	require.Equal(t, []any{store.RunFinished, 7}, []any{r.State, r.Sent})
	require.True(t, r.StartedAt.Equal(when(1)), "a finish without a start keeps the run's start")
	require.Equal(t, 10, run(10).Sent, "a finish is applied once")
	require.Equal(t, store.RunFinished, run(11).State)
	require.True(t, run(11).FinishedAt.Equal(when(3)))
	r = run(3)
	require.Equal(t, store.RunQueued, r.State)
	require.Nil(t, r.StartedAt)
	require.True(t, r.QueuedAt.Equal(when(9)))

	// A run named twice in one batch is applied once.
	tx(func(tx *gorm.DB) error {
		var err error
		applied, err = store.FinishRuns(tx, []store.RunFinish{{RunAck: ackOf(5, 9), Sent: 1}, {RunAck: ackOf(5, 9), Sent: 1}})
		return err
	})
	require.Len(t, applied, 1)

	// The occurrence's counts: all but groups 0 to 3 and 6 to 9 are
	// finished, and it is done only when they are.
	add := func(groups int, last time.Time) {
		tx(func(tx *gorm.DB) error {
			return store.AddOccurrenceCounts(tx, []store.OccurrenceCounts{{Occurrence: o.ID, Groups: groups, Delivered: 2, Failed: 3,
				Expired: 4, SkippedPreference: 5, Quiet: 6, Capped: 7, At: last}})
		})
	}
	occ := func() store.Occurrence {
		var got store.Occurrence
		require.NoError(t, db.First(&got, o.ID).Error)
		return got
	}
	add(n-8, when(9))
	got := occ()
	require.Equal(t, store.OccFiring, got.State)
	require.Equal(t, n-8, got.GroupsDone)
	add(8, when(10))
	got = occ()
	require.Equal(t, store.OccDone, got.State)
	require.True(t, got.DoneAt.Equal(when(10)))
	require.Equal(t, []int64{4, 6, 8, 10, 12, 14}, []int64{got.Delivered, got.Failed, got.Expired, got.SkippedPreference, got.Quiet, got.Capped})
}
