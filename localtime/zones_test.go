package localtime

import (
	"testing"
	"time"
)

// zones covers whole-hour, :30 and :45 offsets, both hemispheres, 30-minute
// DST, zones that abolished or introduced DST, and one that skipped a whole
// day (Apia, 2011-12-30).
var zones = []string{
	"UTC", "Europe/London", "Europe/Paris", "Europe/Istanbul", "Europe/Moscow",
	"America/New_York", "America/Los_Angeles", "America/St_Johns", "America/Sao_Paulo", "America/Santiago",
	"Asia/Riyadh", "Asia/Tehran", "Asia/Kolkata", "Asia/Kathmandu", "Asia/Jakarta", "Asia/Dhaka",
	"Australia/Sydney", "Australia/Lord_Howe", "Australia/Eucla", "Pacific/Chatham", "Pacific/Auckland",
	"Pacific/Apia", "Africa/Casablanca", "Africa/Cairo",
}

var clockTimes = []string{"00:00", "00:30", "01:00", "01:30", "02:00", "02:15", "02:30", "03:00", "03:30", "12:00", "23:30", "23:59:59"}

// For every zone, time of day and day from 2000 to 2040, the instant On
// returns follows the rules: the local wall clock reads the asked time; or
// the time does not exist that day and the instant is the first after the
// gap (the transition); and a time that exists twice is taken at its first
// instant.
func TestOnRulesAcrossZonesAndYears(t *testing.T) {
	if testing.Short() {
		t.Skip("4 million instants")
	}
	for _, name := range zones {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range clockTimes {
			o, _ := Parse(at)
			checked, gaps, repeats := 0, 0, 0
			for d := time.Date(2000, 1, 1, 12, 0, 0, 0, time.UTC); d.Year() <= 2040; d = d.AddDate(0, 0, 1) {
				inst := On(d.Year(), d.Month(), d.Day(), o, loc)
				wall := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, int(o), 0, time.UTC)
				local := inst.In(loc)
				got := time.Date(local.Year(), local.Month(), local.Day(), local.Hour(), local.Minute(), local.Second(), 0, time.UTC)
				switch {
				case got.Equal(wall):
					// The time exists. If it exists twice, inst must be the first.
					for _, back := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour} {
						e := inst.Add(-back).In(loc)
						if time.Date(e.Year(), e.Month(), e.Day(), e.Hour(), e.Minute(), e.Second(), 0, time.UTC).Equal(wall) {
							t.Fatalf("%s %s on %s: %v is the second of two instants", name, at, d.Format(time.DateOnly), inst)
						}
					}
					if _, off := inst.Add(-2 * time.Hour).In(loc).Zone(); off > offsetAt(inst, loc) {
						repeats++
					}
				default:
					// Skipped: the instant is the first after the gap, a
					// transition: a second earlier the clock read a time
					// before the asked one, at the instant a time after it.
					prev := inst.Add(-time.Second).In(loc)
					prevWall := time.Date(prev.Year(), prev.Month(), prev.Day(), prev.Hour(), prev.Minute(), prev.Second(), 0, time.UTC)
					if offsetAt(inst.Add(-time.Second), loc) == offsetAt(inst, loc) {
						t.Fatalf("%s %s on %s: got %v (local %v), not a transition", name, at, d.Format(time.DateOnly), inst, local)
					}
					if !prevWall.Before(wall) || !got.After(wall) {
						t.Fatalf("%s %s on %s: got %v (local %v, a second before %v): not the first instant after the gap", name, at, d.Format(time.DateOnly), inst, local, prev)
					}
					gaps++
				}
				checked++
			}
			if testing.Verbose() && (gaps > 0 || repeats > 0) {
				t.Logf("%-20s %-8s %d days, %d in a gap, %d after clocks went back that day", name, at, checked, gaps, repeats)
			}
		}
	}
}

func offsetAt(t time.Time, loc *time.Location) int {
	_, off := t.In(loc).Zone()
	return off
}

// Between fires once a day, strictly increasing, 22 to 26 hours apart,
// across every transition of the 41 years, except around Apia's skipped
// day.
func TestBetweenOnceADayForDecades(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	from := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	to := time.Date(2041, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, name := range zones {
		loc, _ := time.LoadLocation(name)
		for _, at := range []string{"00:30", "02:30", "05:00", "23:30"} {
			o, _ := Parse(at)
			var fires []time.Time
			for start := from; start.Before(to); start = start.AddDate(1, 0, 0) {
				end := start.AddDate(1, 0, 0)
				fires = append(fires, Between(start, end, o, loc)...)
			}
			for i := 1; i < len(fires); i++ {
				gap := fires[i].Sub(fires[i-1])
				if gap <= 0 {
					t.Fatalf("%s %s: %v after %v", name, at, fires[i], fires[i-1])
				}
				if (gap < 22*time.Hour || gap > 26*time.Hour) && !(name == "Pacific/Apia" && fires[i].Year() == 2011) {
					t.Fatalf("%s %s: %v between %v and %v", name, at, gap, fires[i-1], fires[i])
				}
			}
			days := int(to.Sub(from).Hours() / 24)
			if d := len(fires) - days; d < -2 || d > 2 {
				t.Fatalf("%s %s: %d fires over %d days", name, at, len(fires), days)
			}
		}
	}
}
