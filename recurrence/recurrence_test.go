package recurrence

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/teambition/rrule-go"

	"github.com/chime-dev/chime/localtime"
)

func date(y int, m time.Month, d int) localtime.Date {
	return localtime.Date{Year: y, Month: m, Day: d}
}

func strs(ds []localtime.Date) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.String())
	}
	return out
}

// The rules the product names (Jumu'ah on Fridays, a Tuesday stream, the
// first Monday of the month) and anchored ones match the dates a calendar
// shows for them.
func TestDates(t *testing.T) {
	anchor := date(2026, 1, 5) // a Monday
	for _, tc := range []struct {
		rule        string
		first, last localtime.Date
		want        []string
	}{
		{"FREQ=WEEKLY;BYDAY=FR", date(2026, 11, 30), date(2026, 12, 14), []string{"2026-12-04", "2026-12-11"}},
		{"RRULE:FREQ=WEEKLY;BYDAY=TU", date(2026, 12, 1), date(2026, 12, 15), []string{"2026-12-01", "2026-12-08", "2026-12-15"}},
		{"FREQ=MONTHLY;BYDAY=1MO", date(2026, 11, 1), date(2027, 2, 28), []string{"2026-11-02", "2026-12-07", "2027-01-04", "2027-02-01"}},
		{"FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", date(2026, 12, 1), date(2027, 1, 31), []string{"2026-12-31", "2027-01-29"}},
		{"FREQ=DAILY;BYDAY=SA,SU", date(2026, 12, 4), date(2026, 12, 7), []string{"2026-12-05", "2026-12-06"}},
		// Anchored at the starts_at date, a Monday: every other Monday.
		{"FREQ=WEEKLY;INTERVAL=2", date(2026, 12, 1), date(2026, 12, 31), []string{"2026-12-07", "2026-12-21"}},
		// Three dates from the anchor, then none.
		{"FREQ=DAILY;COUNT=3", date(2026, 1, 1), date(2026, 1, 31), []string{"2026-01-05", "2026-01-06", "2026-01-07"}},
		{"FREQ=WEEKLY;BYDAY=MO;UNTIL=20260119", date(2026, 1, 1), date(2026, 2, 28), []string{"2026-01-05", "2026-01-12", "2026-01-19"}},
		{"", date(2026, 2, 27), date(2026, 3, 2), []string{"2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"}},
	} {
		r, err := Parse(tc.rule)
		require.NoError(t, err, tc.rule)
		require.NoError(t, r.Check(anchor), tc.rule)
		got, err := r.Dates(anchor, tc.first, tc.last)
		require.NoError(t, err, tc.rule)
		require.Equal(t, tc.want, strs(got), tc.rule)
	}
}

// Rules Chime refuses, each for its stated reason: finer than a day,
// DTSTART or time-of-day parts, unbounded counts or intervals, and rules
// that would cost the planner more than MaxSteps periods per date.
func TestRefused(t *testing.T) {
	for _, bad := range []string{
		"FREQ=HOURLY", "FREQ=MINUTELY;BYDAY=MO", "FREQ=SECONDLY", "FREQ=DAILY;BYHOUR=9", "FREQ=DAILY;BYMINUTE=5",
		"DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY", "FREQ=DAILY;DTSTART=20260101T000000Z", "FREQ=WEEKLY;BYDAY=XX",
		"FREQ=DAILY;COUNT=1001", "FREQ=DAILY;INTERVAL=1001", "BYDAY=MO", "FREQ=WEEKLY;BYDAY=MO;BYDAY=TU", "FREQ=YEARLY;BYEASTER=0",
		"FREQ=MONTHLY;BYMONTHDAY=32", "garbage", "FREQ=WEEKLY;BYDAY=MO;" + string(make([]byte, MaxLen)),
	} {
		_, err := Parse(bad)
		require.Error(t, err, bad)
	}
	anchor := date(2026, 1, 1)
	for _, costly := range []string{
		"FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",  // no date at all
		"FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=31", // none either
		"FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29",  // every four years, 1,461 days apart
		"FREQ=WEEKLY;BYDAY=MO;UNTIL=20251231", // ended before it starts
	} {
		r, err := Parse(costly)
		require.NoError(t, err, costly)
		require.Error(t, r.Check(anchor), costly)
	}
	r, err := Parse("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29")
	require.NoError(t, err)
	require.NoError(t, r.Check(anchor), "four yearly steps apart is cheap")
}

// Whether a rule needs starts_at: only when its dates depend on where it
// starts.
func TestNeedsAnchor(t *testing.T) {
	for rule, want := range map[string]bool{
		"FREQ=WEEKLY;BYDAY=FR": false, "FREQ=DAILY": false, "FREQ=MONTHLY;BYDAY=1MO": false,
		"FREQ=WEEKLY": true, "FREQ=MONTHLY": true, "FREQ=DAILY;INTERVAL=2": true, "FREQ=DAILY;COUNT=5": true,
	} {
		r, err := Parse(rule)
		require.NoError(t, err, rule)
		require.Equal(t, want, r.NeedsAnchor(), rule)
	}
}

// Re-anchoring near the span changes no date: for random anchored rules,
// anchors and spans, Dates equals rrule-go's own answer from the anchor.
func TestRebaseKeepsTheDates(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	rules := []string{"FREQ=DAILY;INTERVAL=3", "FREQ=WEEKLY;INTERVAL=2", "FREQ=WEEKLY;INTERVAL=3;BYDAY=TU,SA;WKST=SU",
		"FREQ=MONTHLY", "FREQ=MONTHLY;INTERVAL=5;BYDAY=-1FR", "FREQ=YEARLY;INTERVAL=3", "FREQ=DAILY;INTERVAL=7;BYMONTH=3"}
	for i := 0; i < 300; i++ {
		rule := rules[i%len(rules)]
		r, err := Parse(rule)
		require.NoError(t, err)
		anchor := date(1990+rng.IntN(30), time.Month(1+rng.IntN(12)), 1+rng.IntN(28))
		first := anchor.AddDays(rng.IntN(20000))
		last := first.AddDays(rng.IntN(40))
		got, err := r.Dates(anchor, first, last)
		require.NoError(t, err)
		opt := r.opt
		opt.Dtstart = anchor.Midnight()
		plain, err := rrule.NewRRule(opt)
		require.NoError(t, err)
		var want []localtime.Date
		for _, t := range plain.Between(first.Midnight(), last.Midnight(), true) {
			want = append(want, localtime.Date{Year: t.Year(), Month: t.Month(), Day: t.Day()})
		}
		require.Equal(t, strs(want), strs(got), "%s from %s, %s to %s", rule, anchor, first, last)
	}
}
