package console

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/localtime"
)

// Injects: daily local times across New York's and Paris's clock changes
// of 2027 (a time the spring gap skips, one the autumn fold repeats, and
// an ordinary time on a change day).
// Checks: each fire of the timeline is on the local clock and in UTC as
// package localtime places it, and the change days are flagged with what
// happens: skipped (fires after the gap), repeated (fires once, at the
// first), or the change itself.
func TestTimelineFlagsClockChanges(t *testing.T) {
	ny, _ := localtime.LoadZone("America/New_York")
	paris, _ := localtime.LoadZone("Europe/Paris")
	for _, tc := range []struct {
		name      string
		from      time.Time
		loc       *time.Location
		at        string
		local     string // of the fire on the change day
		utc       string
		note      string
		quietDays int // the other days carry no note
	}{
		{"skipped", time.Date(2027, 3, 13, 12, 0, 0, 0, time.UTC), ny, "02:30", "Sun 14 Mar 03:00:00 EDT (UTC-04:00)", "Sun 14 Mar 07:00:00 UTC",
			"02:30:00 does not exist that day (clocks go forward): fires at 03:00:00 EDT", 6},
		{"repeated", time.Date(2027, 11, 6, 12, 0, 0, 0, time.UTC), ny, "01:30", "Sun 07 Nov 01:30:00 EDT (UTC-04:00)", "Sun 07 Nov 05:30:00 UTC",
			"01:30:00 happens twice that day (clocks go back): fires once, at the first (EDT), not at 01:30:00 EST", 6},
		{"change day", time.Date(2027, 3, 27, 12, 0, 0, 0, time.UTC), paris, "08:00", "Sun 28 Mar 08:00:00 CEST (UTC+02:00)", "Sun 28 Mar 06:00:00 UTC",
			"clock change at 01:00 UTC: clocks go from 02:00 CET (UTC+01:00) to 03:00 CEST (UTC+02:00)", 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := localtime.Parse(tc.at)
			require.NoError(t, err)
			fires := dailyFires(tc.from, TimelineDays, o, tc.loc)
			require.Len(t, fires, TimelineDays)
			var flagged []fireLine
			for _, f := range fires {
				if f.Note != "" {
					flagged = append(flagged, f)
				}
			}
			require.Len(t, flagged, 1, "%+v", fires)
			require.Equal(t, tc.local, flagged[0].Local)
			require.Equal(t, tc.utc, flagged[0].UTC)
			require.Equal(t, tc.note, flagged[0].Note)
			for _, f := range fires {
				require.True(t, strings.HasSuffix(f.UTC, " UTC"))
			}
		})
	}
}
