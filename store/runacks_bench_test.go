package store_test

import (
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/store"
)

// BenchmarkRecordFinishes records the finish acks of a fire of 5,000
// small locations (one group each, each its own occurrence), as the ack
// tracker does in one transaction: "batched" with FinishRuns and
// AddOccurrenceCounts, "statements" as the tracker wrote them before, and
// still does on SQLite (an UPDATE per run and two per occurrence).
// Compare the two in one run.
func BenchmarkRecordFinishes(b *testing.B) {
	db := testenv.New(b).DB
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const occs = 5000
	fires := 0
	fire := func(b *testing.B) []int64 {
		b.Helper()
		fires++
		when := at.Add(time.Duration(fires) * time.Hour)
		os := make([]store.Occurrence, occs)
		for i := range os {
			os[i] = store.Occurrence{ReminderID: 1, LocationID: int64(i + 1), FireAt: when, ExpiresAt: when.Add(time.Hour), State: store.OccFiring, GroupsTotal: 1}
		}
		if err := db.CreateInBatches(os, 1000).Error; err != nil {
			b.Fatal(err)
		}
		ids := make([]int64, occs)
		runs := make([]store.GroupRun, occs)
		for i := range runs {
			ids[i] = os[i].ID
			runs[i] = store.GroupRun{OccurrenceID: os[i].ID, State: store.RunStarted, Attempts: 1, QueuedAt: at}
		}
		if err := db.CreateInBatches(runs, 1000).Error; err != nil {
			b.Fatal(err)
		}
		return ids
	}
	// The same finishes written by the batches and a statement a row.
	finish := func(ids []int64, fins func([]store.RunFinish) ([]store.RunFinish, error), add func([]store.OccurrenceCounts) error) error {
		rows := make([]store.RunFinish, len(ids))
		counts := make([]store.OccurrenceCounts, len(ids))
		for i, id := range ids {
			rows[i] = store.RunFinish{RunAck: store.RunAck{Occurrence: id, Worker: "w", At: at}, Sent: 200}
			counts[i] = store.OccurrenceCounts{Occurrence: id, Groups: 1, Delivered: 200, At: at}
		}
		if _, err := fins(rows); err != nil {
			return err
		}
		return add(counts)
	}
	batched := func(tx *gorm.DB, ids []int64) error {
		return finish(ids, func(r []store.RunFinish) ([]store.RunFinish, error) { return store.FinishRuns(tx, r) },
			func(c []store.OccurrenceCounts) error { return store.AddOccurrenceCounts(tx, c) })
	}
	statements := func(tx *gorm.DB, ids []int64) error {
		return finish(ids, func(r []store.RunFinish) ([]store.RunFinish, error) { return store.FinishRunsEach(tx, r) },
			func(c []store.OccurrenceCounts) error { return store.AddOccurrenceCountsEach(tx, c) })
	}
	for _, bc := range []struct {
		name   string
		record func(*gorm.DB, []int64) error
	}{{"batched", batched}, {"statements", statements}} {
		b.Run(bc.name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				ids := fire(b)
				b.StartTimer()
				if err := db.Transaction(func(tx *gorm.DB) error { return bc.record(tx, ids) }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
