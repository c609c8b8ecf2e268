package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/store"
)

// BenchmarkFireClaims is a fire of 5,000 small locations in MySQL, as the
// firer makes it at the instant: "claim" moves the occurrences from
// scheduled to firing (ClaimOccurrencesEach, a thousand a transaction),
// "runs" drops their runs of groups no longer listed (DropStaleRuns; none
// here, as in nearly every fire) and leaves the rest pending. Each op is
// one whole fire.
func BenchmarkFireClaims(b *testing.B) {
	db := testenv.New(b).DB
	ctx := context.Background()
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const occs = 5000
	fires := 0
	prepare := func(b *testing.B) ([]store.Claim, map[int64][]int) {
		b.Helper()
		fires++
		when := at.Add(time.Duration(fires) * time.Hour)
		os := make([]store.Occurrence, occs)
		for i := range os {
			os[i] = store.Occurrence{ReminderID: 1, LocationID: int64(i + 1), FireAt: when, ExpiresAt: when.Add(time.Hour), State: store.OccScheduled}
		}
		if err := db.CreateInBatches(os, 1000).Error; err != nil {
			b.Fatal(err)
		}
		claims := make([]store.Claim, occs)
		fired := make(map[int64][]int, occs)
		runs := make([]store.GroupRun, occs)
		for i, o := range os {
			claims[i] = store.Claim{ID: o.ID, Groups: 1}
			fired[o.ID] = []int{0}
			runs[i] = store.GroupRun{OccurrenceID: o.ID, State: store.RunPending, Attempts: 1, QueuedAt: when, Layout: 1}
		}
		if err := db.CreateInBatches(runs, 1000).Error; err != nil {
			b.Fatal(err)
		}
		return claims, fired
	}
	b.Run("claim", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			claims, _ := prepare(b)
			b.StartTimer()
			won := 0
			if err := store.ClaimOccurrencesEach(ctx, db, claims, at, func(_, w []int64) { won += len(w) }); err != nil {
				b.Fatal(err)
			}
			if won != occs {
				b.Fatalf("won %d of %d", won, occs)
			}
		}
	})
	b.Run("runs", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			_, fired := prepare(b)
			b.StartTimer()
			if err := store.DropStaleRuns(ctx, db, fired); err != nil {
				b.Fatal(err)
			}
		}
	})
}
