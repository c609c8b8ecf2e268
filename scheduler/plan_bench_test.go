package scheduler_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/scheduler"
	"github.com/chime-dev/chime/store"
)

// BenchmarkPlanPass measures one planning pass (the default 26h horizon)
// over one reminder at 10,000 locations in 24 zones, once everything is
// planned: a prayer reminder firing for five prayers, whose times are
// computed per location and date, against its peer, a daily reminder with
// five local times at each location.
//
//	go test -run '^$' -bench BenchmarkPlanPass -benchtime 5x ./scheduler/
func BenchmarkPlanPass(b *testing.B) {
	zones := []string{"Asia/Jakarta", "Asia/Riyadh", "Europe/London", "Africa/Cairo", "Asia/Karachi", "Asia/Dhaka",
		"Europe/Istanbul", "Asia/Tehran", "America/New_York", "Asia/Kuala_Lumpur", "Africa/Lagos", "Asia/Dubai",
		"Europe/Paris", "Asia/Kolkata", "Africa/Casablanca", "America/Toronto", "Australia/Sydney", "Asia/Tashkent",
		"Europe/Berlin", "Asia/Baku", "Africa/Nairobi", "Asia/Kabul", "America/Chicago", "Asia/Singapore"}
	for _, kind := range []string{store.KindPrayer, store.KindDaily} {
		b.Run(kind, func(b *testing.B) {
			now := time.Date(2026, 3, 28, 0, 0, 0, 0, time.UTC)
			bd := setupCfg(b, now, scheduler.Config{})
			db := bd.env.DB
			app := store.App{Name: "bench"}
			require.NoError(b, db.Create(&app).Error)
			r := store.Reminder{AppID: app.ID, Key: "r", Title: "T", Groups: 4, ValidForS: 600, Kind: kind,
				Prayers: "fajr:-600,dhuhr:0,asr:0,maghrib:0,isha:0", CreatedAt: now.Add(-time.Hour)}
			require.NoError(b, db.Create(&r).Error)
			rng := rand.New(rand.NewPCG(1, 2))
			const n = 10000
			locs := make([]store.Location, n)
			for i := range locs {
				lat, lon := rng.Float64()*120-60, rng.Float64()*360-180
				locs[i] = store.Location{AppID: app.ID, Name: fmt.Sprintf("l%05d", i), Zone: zones[i%len(zones)], Latitude: &lat, Longitude: &lon}
			}
			require.NoError(b, db.CreateInBatches(&locs, 1000).Error)
			rls := make([]store.ReminderLocation, n)
			var times []store.ReminderTime
			for i, l := range locs {
				rls[i] = store.ReminderLocation{ReminderID: r.ID, LocationID: l.ID}
				if kind == store.KindDaily {
					for _, h := range []int{5, 12, 15, 18, 20} {
						times = append(times, store.ReminderTime{ReminderID: r.ID, LocationID: l.ID, LocalSec: h * 3600, CreatedAt: now.Add(-time.Hour)})
					}
				}
			}
			require.NoError(b, db.CreateInBatches(&rls, 1000).Error)
			if len(times) > 0 {
				require.NoError(b, db.CreateInBatches(&times, 1000).Error)
			}
			ctx := context.Background()
			require.NoError(b, bd.s.Plan(ctx)) // the first pass adds every occurrence
			var planned int64
			require.NoError(b, db.Model(&store.Occurrence{}).Count(&planned).Error)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := bd.s.Plan(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(planned), "occurrences")
		})
	}
}
