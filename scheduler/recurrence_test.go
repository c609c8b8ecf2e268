package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/scheduler"
	"github.com/chime-dev/chime/store"
)

// A recurring daily reminder is planned on the dates its rule names only,
// on each location's own calendar: Tuesdays at 20:00 in Auckland (UTC+13)
// and Honolulu (UTC-10) over a horizon of nine days; replacing the rule
// cancels the occurrences it no longer names.
func TestPlanRecurringDailyOnlyOnItsDates(t *testing.T) {
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC) // a Monday
	b := setupCfg(t, now, scheduler.Config{Horizon: 9 * 24 * time.Hour})
	r, locs := b.kindReminder(t, store.Reminder{Kind: store.KindDaily, Recurrence: "FREQ=WEEKLY;BYDAY=TU"},
		[]string{"Pacific/Auckland", "Pacific/Honolulu"}, 0)
	for _, l := range locs {
		require.NoError(t, b.env.DB.Create(&store.ReminderTime{ReminderID: r.ID, LocationID: l, LocalSec: 20 * 3600, CreatedAt: now.Add(-time.Hour)}).Error)
	}
	ctx := context.Background()
	require.NoError(t, b.s.Plan(ctx))
	require.NoError(t, b.s.Plan(ctx), "planning twice adds nothing")
	require.Equal(t, []string{
		"2026-12-01T07:00:00Z", // Auckland, Tuesday 1 December 20:00 NZDT
		"2026-12-02T06:00:00Z", // Honolulu, Tuesday 1 December 20:00 HST
		"2026-12-08T07:00:00Z",
	}, fireTimes(b.occurrences(t), store.OccScheduled))

	require.NoError(t, b.env.DB.Model(&r).Update("recurrence", "FREQ=WEEKLY;BYDAY=WE").Error)
	require.NoError(t, b.s.Plan(ctx))
	require.Equal(t, []string{"2026-12-02T07:00:00Z", "2026-12-03T06:00:00Z"}, fireTimes(b.occurrences(t), store.OccScheduled))
	require.Len(t, fireTimes(b.occurrences(t), store.OccCanceled), 3)
}
