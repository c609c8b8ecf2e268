// Package localtime turns a wall-clock time of day in an IANA zone into UTC
// instants, with written rules for the hour a clock change skips and the hour
// it repeats.
//
// Rules (the same as RFC 5545 and most calendar software):
//   - A local time that happens twice on a day (clocks go back) fires once, at
//     the first of the two instants.
//   - A local time that does not exist on a day (clocks go forward) fires once,
//     at the first instant after the gap, the transition itself: 02:30 on a
//     day New York jumps from 02:00 to 03:00 fires at 03:00 EDT. (A day a
//     zone skips whole, as Apia did on 2011-12-30, fires at the first
//     instant of the next day.)
//
// Everything returned is in UTC; zones exist only at this edge.
package localtime

import (
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"
	// Embed the zone database so fire instants do not depend on the host.
	_ "time/tzdata"
)

// ErrSyntax is returned for a time of day that is not HH:MM or HH:MM:SS.
var ErrSyntax = errors.New("local time must be HH:MM or HH:MM:SS, 00:00:00 to 23:59:59")

// Of is a time of day, in seconds after local midnight.
type Of int

// Parse reads "HH:MM" or "HH:MM:SS" on a 24-hour clock.
func Parse(s string) (Of, error) {
	var h, m, sec int
	switch len(s) {
	case 5:
		if s[2] != ':' {
			return 0, ErrSyntax
		}
	case 8:
		if s[2] != ':' || s[5] != ':' {
			return 0, ErrSyntax
		}
	default:
		return 0, ErrSyntax
	}
	digits := func(a, b byte) (int, bool) {
		if a < '0' || a > '9' || b < '0' || b > '9' {
			return 0, false
		}
		return int(a-'0')*10 + int(b-'0'), true
	}
	var ok bool
	if h, ok = digits(s[0], s[1]); !ok || h > 23 {
		return 0, ErrSyntax
	}
	if m, ok = digits(s[3], s[4]); !ok || m > 59 {
		return 0, ErrSyntax
	}
	if len(s) == 8 {
		if sec, ok = digits(s[6], s[7]); !ok || sec > 59 {
			return 0, ErrSyntax
		}
	}
	return Of(h*3600 + m*60 + sec), nil
}

// String formats the time as HH:MM:SS.
func (o Of) String() string {
	s := int(o)
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}

// MaxZone is the longest zone name LoadZone takes; the longest IANA name
// has 32 bytes.
const MaxZone = 64

// zonePattern is the form of IANA zone names. time.LoadLocation also loads
// "America//New_York" or "./UTC" (the host's zone directory resolves the
// path), which would store one zone under many names, of any length.
var zonePattern = regexp.MustCompile(`^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$`)

// loaded keeps every zone LoadZone has loaded: time.LoadLocation reads and
// parses the zone's file on each call, and the planner, the worker's
// delivery policy and every zone move ask for the same few hundred zones
// again and again. Only zones that loaded are kept, so it holds at most
// the IANA database's zones.
var loaded sync.Map // name → *time.Location

// LoadZone loads an IANA zone by its name, of at most MaxZone bytes.
// "Local" and the empty name are refused: a reminder's zone must not
// depend on the machine that runs it.
func LoadZone(name string) (*time.Location, error) {
	if loc, ok := loaded.Load(name); ok {
		return loc.(*time.Location), nil
	}
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("zone %q: an IANA zone name such as Europe/Paris is required", name)
	}
	if len(name) > MaxZone {
		return nil, fmt.Errorf("a zone name has at most %d bytes; this one has %d", MaxZone, len(name))
	}
	if !zonePattern.MatchString(name) {
		return nil, fmt.Errorf("zone %q is not an IANA zone name such as Europe/Paris", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("zone %q is not a known IANA time zone", name)
	}
	loaded.Store(name, loc)
	return loc, nil
}

// On returns the UTC instant at which local time o happens on the local date
// year-month-day in loc, following the package rules for skipped and repeated
// times.
func On(year int, month time.Month, day int, o Of, loc *time.Location) time.Time {
	// The wall clock read as if it were UTC; subtracting a zone offset gives a
	// candidate instant.
	wall := time.Date(year, month, day, 0, 0, int(o), 0, time.UTC)
	// Offsets in force a day either side cover any single transition that day.
	_, before := wall.Add(-26 * time.Hour).In(loc).Zone()
	_, after := wall.Add(26 * time.Hour).In(loc).Zone()
	var best time.Time
	for _, off := range []int{before, after} {
		inst := wall.Add(-time.Duration(off) * time.Second)
		if !sameWall(inst.In(loc), wall) {
			continue
		}
		if best.IsZero() || inst.Before(best) {
			best = inst
		}
	}
	if best.IsZero() {
		// Skipped: the time read with the offset before the transition lands
		// past it, in the zone period the transition starts; the first
		// instant after the gap is that period's start.
		past := wall.Add(-time.Duration(before) * time.Second)
		best, _ = past.In(loc).ZoneBounds()
		if best.IsZero() || best.After(past) {
			best = past
		}
	}
	return best.UTC()
}

func sameWall(t, wall time.Time) bool {
	y, m, d := t.Date()
	wy, wm, wd := wall.Date()
	return y == wy && m == wm && d == wd && t.Hour() == wall.Hour() && t.Minute() == wall.Minute() && t.Second() == wall.Second()
}

// Date is a calendar date on a location's clock, free of any zone: the
// date a reminder's rules (a time of day, a recurrence, a prayer's day) are
// evaluated on.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// DateOf returns the local date of instant t in loc.
func DateOf(t time.Time, loc *time.Location) Date {
	y, m, d := t.In(loc).Date()
	return Date{y, m, d}
}

// ParseDate reads YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, err
	}
	return Date{t.Year(), t.Month(), t.Day()}, nil
}

// AddDays returns the date n days after d, counted on the calendar: a day
// a zone skips whole is still a date.
func (d Date) AddDays(n int) Date {
	t := time.Date(d.Year, d.Month, d.Day+n, 0, 0, 0, 0, time.UTC)
	return Date{t.Year(), t.Month(), t.Day()}
}

// Midnight returns the date's midnight read as if it were UTC, the floating
// form calendar rules (RFC 5545 recurrences) are computed in.
func (d Date) Midnight() time.Time { return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC) }

// String formats the date as YYYY-MM-DD.
func (d Date) String() string { return d.Midnight().Format(time.DateOnly) }

// Before reports whether d is an earlier date than e.
func (d Date) Before(e Date) bool { return d.Midnight().Before(e.Midnight()) }

// Skipped reports whether loc skips date d whole, as Apia skipped
// 2011-12-30: its midnight falls, by the rules of On, on the next day.
func Skipped(d Date, loc *time.Location) bool {
	return DateOf(On(d.Year, d.Month, d.Day, 0, loc), loc) != d
}

// MaxDates bounds the dates Dates returns.
const MaxDates = 400

// Dates returns, in order, the local dates in loc whose times of day may
// fall in (from, to], at most MaxDates: from the day before the date at
// from (after a clock change an earlier date's time may still be ahead) to
// the date at to. Dates are counted on the calendar, so a day the zone
// skips whole is among them and fires by the rules of On.
func Dates(from, to time.Time, loc *time.Location) []Date {
	first, last := DateOf(from, loc).AddDays(-1), DateOf(to, loc)
	var out []Date
	for d := first; !last.Before(d) && len(out) < MaxDates; d = d.AddDays(1) {
		out = append(out, d)
	}
	return out
}

// Between returns, in order, the instants of local time o in loc that fall in
// the half-open interval (from, to].
func Between(from, to time.Time, o Of, loc *time.Location) []time.Time {
	var out []time.Time
	for _, d := range Dates(from, to, loc) {
		inst := On(d.Year, d.Month, d.Day, o, loc)
		if inst.After(to) {
			break
		}
		// Two dates give one instant when the first is skipped whole and o
		// is midnight: it fires once.
		if inst.After(from) && (len(out) == 0 || inst.After(out[len(out)-1])) {
			out = append(out, inst)
		}
	}
	return out
}

// Next returns the first instant of local time o in loc strictly after t.
func Next(t time.Time, o Of, loc *time.Location) time.Time {
	fires := Between(t, t.Add(50*time.Hour), o, loc)
	return fires[0]
}
