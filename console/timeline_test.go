package console

import (
	"fmt"
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

// Injects: a daily 08:00 in Paris from Monday 2027-03-01 with the editor's
// recurrence presets and free rules: weekdays, every Friday, every other
// day counted from starts_at, the same without starts_at, and a rule
// that is not one.
// Checks: the timeline fires on the dates the rule names (and marks the
// others as not firing), a rule that counts from its start is refused
// without starts_at, and a bad rule is reported, not fired.
func TestTimelineRecurrence(t *testing.T) {
	paris, _ := localtime.LoadZone("Europe/Paris")
	from := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC) // a Monday
	to := from.AddDate(0, 0, TimelineDays)
	o, _ := localtime.Parse("08:00")
	for _, tc := range []struct {
		name, rule, startsAt string
		want                 []string // the local dates of the fires
		// lastDay is whether the rule names the span's last local date,
		// 2027-03-08 (it starts at 01:00 there, before 08:00).
		lastDay bool
		err     string
	}{
		{"every day", "", "", []string{"2027-03-01", "2027-03-02", "2027-03-03", "2027-03-04", "2027-03-05", "2027-03-06", "2027-03-07"}, true, ""},
		{"weekdays", presets[1].Rule, "", []string{"2027-03-01", "2027-03-02", "2027-03-03", "2027-03-04", "2027-03-05"}, true, ""},
		{"every friday", presets[2].Rule, "", []string{"2027-03-05"}, false, ""},
		{"every other day from its start", "FREQ=DAILY;INTERVAL=2", "2027-02-28T12:00:00Z", []string{"2027-03-02", "2027-03-04", "2027-03-06"}, true, ""},
		{"every other day without a start", "FREQ=DAILY;INTERVAL=2", "", nil, false, "set starts_at"},
		{"not a rule", "FREQ=SOMETIMES", "", nil, false, "not an RFC 5545 RRULE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &form{Kind: "daily", Recurrence: tc.rule, StartsAt: tc.startsAt}
			rule, err := f.rule()
			var match func(localtime.Date) bool
			l := &timelineLoc{}
			if err == nil {
				match, err = f.days(rule, paris, from, to, l)
			}
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			var got []string
			for _, fl := range dailyFires(from, TimelineDays, o, paris) {
				if d := localtime.DateOf(fl.at, paris); match(d) {
					got = append(got, d.String())
				}
			}
			require.Equal(t, tc.want, got)
			if tc.rule == "" {
				require.Empty(t, l.Days, "every day needs no marks")
				return
			}
			var on []string
			for _, d := range l.Days {
				if d.Fires {
					on = append(on, d.Date)
				}
			}
			want := tc.want
			if tc.lastDay {
				want = append(want[:len(want):len(want)], "2027-03-08")
			}
			require.Equal(t, want, on)
			require.Len(t, l.Days, TimelineDays+1, "the dates from the first to the last of the span")
		})
	}
}

// Injects: a daily reminder's form with 150 times, one location each.
// Checks: the timeline computes the first TimelineRows of them and says
// the rest are checked on save; the form itself keeps all 150.
func TestTimelineRowsAreBounded(t *testing.T) {
	f := &form{Kind: "daily"}
	for i := range 150 {
		f.Times = append(f.Times, timeRow{Location: fmt.Sprintf("l%d", i), Zone: "UTC", LocalTime: "08:00"})
	}
	c := &Console{cfg: Config{Now: time.Now}}
	tl := c.timelineOf(nil, nil, f)
	require.Len(t, tl.Locs, TimelineRows)
	require.Contains(t, tl.Note, "first 100 rows")
	require.Len(t, f.Times, 150)
}
