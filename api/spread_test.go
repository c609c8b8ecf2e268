package api_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/store"
)

// A reminder's spread is stored and read back, and leaving it out sends at
// the instant. A spread occurrence (rows as the firer leaves them mid-spread:
// four group runs at planned slots, one slot 3 s late) reports its spread,
// its first and last slot, how many groups are due by now, and its lateness
// against the slots rather than the instant; another app cannot read it.
func TestSpreadRoundTripAndOccurrencePlan(t *testing.T) {
	day := time.Date(2030, 3, 4, 8, 0, 0, 0, time.UTC)
	now := day.Add(5 * time.Minute)
	b := setupWith(t, api.Config{Now: func() time.Time { return now }})

	var got api.Reminder
	requireJSON(t, b.as(http.MethodPut, "/v1/reminders/sale", map[string]any{"title": "Sale", "valid_for": "30m", "spread": "15m",
		"times": []api.ReminderTime{at("paris", "Europe/Paris", "09:00")}}), http.StatusCreated, &got)
	require.Equal(t, "15m0s", got.Spread)
	require.EqualValues(t, 900, b.storedReminder("sale").SpreadS)
	requireJSON(t, b.as(http.MethodGet, "/v1/reminders/sale", nil), http.StatusOK, &got)
	require.Equal(t, "15m0s", got.Spread)
	got = api.Reminder{}
	requireJSON(t, b.as(http.MethodPut, "/v1/reminders/sale", map[string]any{"title": "Sale", "valid_for": "30m",
		"times": []api.ReminderTime{at("paris", "Europe/Paris", "09:00")}}), http.StatusOK, &got)
	require.Empty(t, got.Spread, "left out: no spread")
	require.Zero(t, b.storedReminder("sale").SpreadS)

	paris := b.loc("sale", "paris")
	fired := day.Add(20 * time.Millisecond)
	o := store.Occurrence{ReminderID: paris.Reminder, LocationID: paris.Location, FireAt: day, ExpiresAt: day.Add(30 * time.Minute),
		State: store.OccFiring, GroupsTotal: 4, FiredAt: &fired, SpreadS: 900, SlotsLateMs: 3000}
	require.NoError(t, b.env.DB.Create(&o).Error)
	for i := range 4 {
		slot := day.Add(time.Duration(i) * 225 * time.Second).Add(time.Second)
		state := store.RunQueued
		if slot.After(now) {
			state = store.RunPending
		}
		require.NoError(t, b.env.DB.Create(&store.GroupRun{OccurrenceID: o.ID, GroupNo: i, Layout: 4, State: state, Attempts: 1,
			QueuedAt: day, SlotAt: &slot}).Error)
	}
	var occ api.Occurrence
	requireJSON(t, b.as(http.MethodGet, "/v1/occurrences/"+strconv.FormatInt(o.ID, 10), nil), http.StatusOK, &occ)
	require.Equal(t, "15m0s", occ.Spread)
	require.NotNil(t, occ.FirstSlotAt)
	require.Equal(t, day.Add(time.Second), *occ.FirstSlotAt)
	require.Equal(t, day.Add(675*time.Second+time.Second), *occ.LastSlotAt)
	require.NotNil(t, occ.GroupsDue)
	require.Equal(t, 2, *occ.GroupsDue, "slots at 0:01 and 3:46 have come by 5:00")
	require.EqualValues(t, 3000, *occ.LateMs, "late against its slots, not the instant")
	require.False(t, occ.Late)

	var list struct{ Occurrences []api.Occurrence }
	requireJSON(t, b.as(http.MethodGet, "/v1/occurrences?reminder=sale", nil), http.StatusOK, &list)
	require.Len(t, list.Occurrences, 1)
	require.Equal(t, "15m0s", list.Occurrences[0].Spread)
	require.Nil(t, list.Occurrences[0].GroupsDue, "the plan is in the occurrence's own answer")

	requireProblem(t, b.req(http.MethodGet, "/v1/occurrences/"+strconv.FormatInt(o.ID, 10), b.keyB, nil), http.StatusNotFound)
}
