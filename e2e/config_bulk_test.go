package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime"
)

// The bulk limits are read from the environment (unset: the API's
// defaults), negative values are refused, and a coordinator applies them:
// CHIME_TIMETABLE_MAX_BYTES=100 makes a 200-byte timetable 413.
func TestBulkConfig(t *testing.T) {
	c, err := chime.LoadConfig(nil)
	require.NoError(t, err)
	require.Zero(t, c.BulkPerApp+c.BulkTotal+int(c.MaxTimetable), "unset: the API applies its defaults")
	c, err = chime.LoadConfig([]string{"CHIME_BULK_CONCURRENCY=3", "CHIME_BULK_CONCURRENCY_TOTAL=12", "CHIME_TIMETABLE_MAX_BYTES=100"})
	require.NoError(t, err)
	require.Equal(t, []int64{3, 12, 100}, []int64{int64(c.BulkPerApp), int64(c.BulkTotal), c.MaxTimetable})
	for _, bad := range []string{"CHIME_BULK_CONCURRENCY=-1", "CHIME_BULK_CONCURRENCY_TOTAL=-1", "CHIME_TIMETABLE_MAX_BYTES=-5"} {
		_, err := chime.LoadConfig([]string{bad})
		require.ErrorContains(t, err, strings.Split(bad, "=")[0], bad)
	}

	b := setup(t)
	b.cfg.MaxTimetable = c.MaxTimetable
	b.startCoordinator("c1")
	require.Equal(t, http.StatusCreated, b.call(http.MethodPut, "/v1/reminders/fajr", map[string]any{"kind": "timetable", "title": "Fajr"}, nil))
	csv := "location,zone,date,name,local_time\n" + strings.Repeat("jakarta,Asia/Jakarta,2026-03-01,fajr,04:41\n", 5)
	require.Greater(t, len(csv), 100)
	require.Equal(t, http.StatusRequestEntityTooLarge, b.callRaw(http.MethodPost, "/v1/timetable", "text/csv", csv, nil))
}
