package localtime

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Of
		ok   bool
	}{
		{"00:00", 0, true},
		{"05:12", 5*3600 + 12*60, true},
		{"23:59:59", 86399, true},
		{"07:30:05", 7*3600 + 30*60 + 5, true},
		{"24:00", 0, false},
		{"12:60", 0, false},
		{"12:00:60", 0, false},
		{"7:30", 0, false},
		{"07-30", 0, false},
		{"", 0, false},
		{"ab:cd", 0, false},
		{"07:30:5", 0, false},
	} {
		got, err := Parse(tc.in)
		if !tc.ok {
			require.ErrorIs(t, err, ErrSyntax, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
		require.Len(t, got.String(), 8)
	}
}

func TestOnAcrossClockChanges(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	lh, _ := time.LoadLocation("Australia/Lord_Howe")
	riyadh, _ := time.LoadLocation("Asia/Riyadh")
	chatham, _ := time.LoadLocation("Pacific/Chatham")
	kathmandu, _ := time.LoadLocation("Asia/Kathmandu")
	saoPaulo, _ := time.LoadLocation("America/Sao_Paulo")
	apia, _ := time.LoadLocation("Pacific/Apia")
	for _, tc := range []struct {
		name string
		y    int
		m    time.Month
		d    int
		at   string
		loc  *time.Location
		want string // RFC 3339 in UTC
	}{
		{"plain day", 2026, 6, 1, "05:00", ny, "2026-06-01T09:00:00Z"},
		{"no DST zone", 2026, 3, 8, "04:45:30", riyadh, "2026-03-08T01:45:30Z"},
		{"skipped time fires at the first instant after the gap", 2026, 3, 8, "02:30", ny, "2026-03-08T07:00:00Z"},
		{"start of the gap too", 2026, 3, 8, "02:00", ny, "2026-03-08T07:00:00Z"},
		{"just before the gap", 2026, 3, 8, "01:59:59", ny, "2026-03-08T06:59:59Z"},
		{"first instant after the gap", 2026, 3, 8, "03:00", ny, "2026-03-08T07:00:00Z"},
		{"repeated hour fires at the first", 2026, 11, 1, "01:30", ny, "2026-11-01T05:30:00Z"},
		{"after the repeated hour", 2026, 11, 1, "02:00", ny, "2026-11-01T07:00:00Z"},
		{"half-hour DST gap", 2026, 10, 4, "02:15", lh, "2026-10-03T15:30:00Z"},
		{":45 zone with DST, inside the gap", 2026, 9, 27, "02:50", chatham, "2026-09-26T14:00:00Z"},
		{":45 zone without DST", 2026, 3, 1, "05:00", kathmandu, "2026-02-28T23:15:00Z"},
		{"midnight gap in a zone that later abolished DST", 2018, 11, 4, "00:30", saoPaulo, "2018-11-04T03:00:00Z"},
		{"same zone after DST was abolished", 2026, 11, 1, "00:30", saoPaulo, "2026-11-01T03:30:00Z"},
		{"a whole day skipped (Apia, 2011-12-30)", 2011, 12, 30, "09:00", apia, "2011-12-30T10:00:00Z"},
		{"far ahead", 2099, 3, 8, "02:30", ny, "2099-03-08T07:00:00Z"},
		{"half-hour DST repeat", 2026, 4, 5, "01:45", lh, "2026-04-04T14:45:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := Parse(tc.at)
			require.NoError(t, err)
			got := On(tc.y, tc.m, tc.d, o, tc.loc)
			require.Equal(t, tc.want, got.Format(time.RFC3339))
		})
	}
}

func TestBetweenOncePerDayEvenOnChangeDays(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	for _, at := range []string{"00:00", "01:30", "02:30", "03:00", "23:59:59"} {
		o, _ := Parse(at)
		from := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
		to := from.AddDate(1, 0, 0)
		got := Between(from, to, o, ny)
		require.InDelta(t, 365, len(got), 1, at)
		for i := 1; i < len(got); i++ {
			gap := got[i].Sub(got[i-1])
			require.True(t, gap >= 23*time.Hour && gap <= 25*time.Hour, "%s: %v then %v", at, got[i-1], got[i])
		}
	}
}

func TestNextIsStrictlyAfter(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Jakarta")
	o, _ := Parse("04:30")
	at := On(2026, 11, 24, o, loc)
	require.Equal(t, at, Next(at.Add(-time.Second), o, loc))
	require.Equal(t, at.Add(24*time.Hour), Next(at, o, loc))
}

func TestLoadZone(t *testing.T) {
	_, err := LoadZone("Europe/Paris")
	require.NoError(t, err)
	// Paths the host's zone directory would resolve are not zone names: they
	// would store one zone under many names, of any length.
	for _, bad := range []string{"", "Local", "Mars/Olympus", "../etc/passwd", "America//New_York", "./UTC",
		"America/./New_York", strings.Repeat("./", 40) + "UTC"} {
		_, err := LoadZone(bad)
		require.Error(t, err, bad)
	}
}

// A day a zone skips whole (Apia went from 2011-12-29 to 2011-12-31,
// Kiritimati from 1994-12-30 to 1995-01-01) still fires, at the first
// instant of the next day, as the package rules say: Between must ask On
// for that date instead of stepping over it. Injects each zone's skipped
// date and checks every date of the span fires once, the skipped one at
// the transition.
func TestBetweenFiresOnADaySkippedWhole(t *testing.T) {
	for _, tc := range []struct {
		zone    string
		skipped time.Time // the local date skipped, as a UTC midnight
		first   string    // the first instant of the next local day, UTC
	}{
		{"Pacific/Apia", time.Date(2011, 12, 30, 0, 0, 0, 0, time.UTC), "2011-12-30T10:00:00Z"},
		{"Pacific/Kiritimati", time.Date(1994, 12, 31, 0, 0, 0, 0, time.UTC), "1994-12-31T10:00:00Z"},
	} {
		loc, err := time.LoadLocation(tc.zone)
		require.NoError(t, err)
		for _, at := range []string{"00:00", "09:00", "23:30"} {
			o, _ := Parse(at)
			from, to := tc.skipped.AddDate(0, 0, -3), tc.skipped.AddDate(0, 0, 3)
			got := Between(from, to, o, loc)
			var want []time.Time
			for d := tc.skipped.AddDate(0, 0, -4); !d.After(tc.skipped.AddDate(0, 0, 4)); d = d.AddDate(0, 0, 1) {
				// At 00:00 the skipped day and the next fire at the same instant: once.
				if inst := On(d.Year(), d.Month(), d.Day(), o, loc); inst.After(from) && !inst.After(to) && !slices.Contains(want, inst) {
					want = append(want, inst)
				}
			}
			require.Equal(t, want, got, "%s %s", tc.zone, at)
			require.Contains(t, got, mustTime(t, tc.first), "%s %s: the skipped day fires at the first instant of the next", tc.zone, at)
		}
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	require.NoError(t, err)
	return v
}

// Skipped is true for the dates a zone skips whole and for no other, across
// the days around them and a spring-forward gap at midnight.
func TestSkipped(t *testing.T) {
	apia, _ := time.LoadLocation("Pacific/Apia")
	kiritimati, _ := time.LoadLocation("Pacific/Kiritimati")
	saoPaulo, _ := time.LoadLocation("America/Sao_Paulo")
	require.True(t, Skipped(Date{2011, 12, 30}, apia))
	require.True(t, Skipped(Date{1994, 12, 31}, kiritimati))
	for _, d := range []Date{{2011, 12, 29}, {2011, 12, 31}} {
		require.False(t, Skipped(d, apia), d)
	}
	require.False(t, Skipped(Date{2018, 11, 4}, saoPaulo), "00:00 to 01:00 skipped, not the day")
}
