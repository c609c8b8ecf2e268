// Package recurrence decides on which local dates a recurring reminder
// fires, from an RFC 5545 recurrence rule (RRULE) evaluated by
// github.com/teambition/rrule-go. The time of day on each date comes from
// the reminder's kind (a local time, a prayer) and package localtime's
// clock-change rules; a rule here only names dates.
//
// Rules are evaluated on floating dates: a location's local calendar,
// whatever its zone. A rule counts from its anchor (RFC 5545's DTSTART),
// the local date of the reminder's starts_at. Without starts_at a rule must
// not depend on where it starts: it names its days (or is DAILY), has
// INTERVAL 1 and no COUNT.
//
// Cost is bounded so that one rule cannot stall the planner: FREQ is DAILY
// or coarser (no SECONDLY, MINUTELY or HOURLY), COUNT is at most MaxCount,
// INTERVAL at most MaxInterval, and Check refuses a rule that matches no
// date or leaves more than MaxSteps periods of its FREQ between two dates
// (FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29 does; FREQ=YEARLY with the same days
// does not). Dates re-anchors a rule without COUNT near the span asked for,
// on a period of the rule and of the 400-year Gregorian cycle, so the work
// of one evaluation does not grow with the rule's age.
package recurrence

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/teambition/rrule-go"

	"github.com/chime-dev/chime/localtime"
)

const (
	// MaxLen is the longest rule, in bytes.
	MaxLen = 500
	// MaxCount bounds COUNT.
	MaxCount = 1000
	// MaxInterval bounds INTERVAL.
	MaxInterval = 1000
	// MaxSteps bounds how many periods of the rule's FREQ may pass without
	// a date: the search for the next date costs one step a period.
	MaxSteps = 400
	// probeDates is how many dates Check follows from the anchor.
	probeDates = 24
)

// Rule is a parsed, bounded recurrence rule.
type Rule struct {
	text      string
	opt       rrule.ROption
	anchored  bool // it counts from its anchor: COUNT, INTERVAL > 1 or a day taken from the anchor
	namesDays bool
}

// String is the rule as stored: the RRULE value without the "RRULE:" name.
func (r Rule) String() string { return r.text }

// NeedsAnchor reports whether the rule depends on the date it counts from,
// so that a reminder must set starts_at to use it.
func (r Rule) NeedsAnchor() bool { return r.anchored }

// Parse reads an RRULE value ("FREQ=WEEKLY;BYDAY=TU", optionally prefixed
// "RRULE:") and checks the parts Chime takes and their bounds. The empty
// rule is the zero Rule: every date.
func Parse(s string) (Rule, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "RRULE:")
	if s == "" {
		return Rule{}, nil
	}
	if len(s) > MaxLen {
		return Rule{}, fmt.Errorf("has at most %d bytes", MaxLen)
	}
	if strings.ContainsAny(s, "\r\n") {
		return Rule{}, errors.New("is one RRULE value such as FREQ=WEEKLY;BYDAY=FR, without DTSTART or other lines")
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ";") {
		name, _, _ := strings.Cut(part, "=")
		switch name {
		case "DTSTART":
			return Rule{}, errors.New("takes no DTSTART: a rule counts from the local date of starts_at")
		case "BYHOUR", "BYMINUTE", "BYSECOND":
			return Rule{}, fmt.Errorf("takes no %s: the time of day comes from the reminder's times or prayers", name)
		case "BYEASTER":
			return Rule{}, errors.New("takes no BYEASTER, which is not RFC 5545")
		}
		if seen[name] {
			return Rule{}, fmt.Errorf("names %s twice", name)
		}
		seen[name] = true
	}
	popt, err := rrule.StrToROption(s)
	if err != nil {
		return Rule{}, fmt.Errorf("is not an RFC 5545 RRULE: %v", err)
	}
	opt := *popt
	if opt.Freq > rrule.DAILY {
		return Rule{}, errors.New("FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY: a reminder fires at most once a day per time")
	}
	if opt.Interval < 0 || opt.Interval > MaxInterval {
		return Rule{}, fmt.Errorf("INTERVAL must be between 1 and %d", MaxInterval)
	}
	if opt.Count < 0 || opt.Count > MaxCount {
		return Rule{}, fmt.Errorf("COUNT must be between 1 and %d", MaxCount)
	}
	if !opt.Until.IsZero() {
		// UNTIL names a local date; its time of day is dropped.
		y, m, d := opt.Until.Date()
		opt.Until = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	}
	// Bounds of every BY part, as RFC 5545 states them.
	probe := opt
	probe.Dtstart = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := rrule.NewRRule(probe); err != nil {
		return Rule{}, fmt.Errorf("is out of bounds: %v", err)
	}
	r := Rule{text: s, opt: opt}
	r.namesDays = len(opt.Byweekday) > 0 || len(opt.Bymonthday) > 0 || len(opt.Byyearday) > 0 || len(opt.Byweekno) > 0
	r.anchored = opt.Count > 0 || opt.Interval > 1 || (!r.namesDays && opt.Freq != rrule.DAILY)
	return r, nil
}

// IsZero reports whether the rule is empty: every date.
func (r Rule) IsZero() bool { return r.text == "" }

// Check follows the rule from anchor (the local date of starts_at, or
// today's when the rule needs none) and refuses one that matches no date
// or whose dates are more than MaxSteps periods apart. A rule that matches
// no date at all is searched to the year 9999 once, here, at a cost of
// under a quarter of a second; the planner never sees it.
func (r Rule) Check(anchor localtime.Date) error {
	if r.IsZero() {
		return nil
	}
	rr, err := r.at(anchor.Midnight())
	if err != nil {
		return err
	}
	next := rr.Iterator()
	prev := anchor.Midnight()
	for i := 0; i < probeDates; i++ {
		d, ok := next()
		if !ok {
			if i == 0 {
				return errors.New("matches no date after its start")
			}
			return nil
		}
		if steps := r.steps(prev, d); steps > MaxSteps {
			return fmt.Errorf("leaves %d periods of its FREQ between %s and %s; at most %d are allowed (use a coarser FREQ, such as YEARLY for a date that comes back every few years)",
				steps, prev.Format(time.DateOnly), d.Format(time.DateOnly), MaxSteps)
		}
		prev = d
	}
	return nil
}

// steps returns about how many periods of the rule's FREQ lie between a
// and b.
func (r Rule) steps(a, b time.Time) int {
	days := int(b.Sub(a).Hours() / 24)
	switch r.opt.Freq {
	case rrule.WEEKLY:
		return days / 7
	case rrule.MONTHLY:
		return days / 28
	case rrule.YEARLY:
		return days / 365
	}
	return days
}

// at builds the rule counting from dtstart.
func (r Rule) at(dtstart time.Time) (*rrule.RRule, error) {
	opt := r.opt
	opt.Dtstart = dtstart
	return rrule.NewRRule(opt)
}

// cycle is the Gregorian calendar's period: 400 years, 146,097 days, a
// whole number of weeks, so dates and weekdays repeat after it.
const cycleDays, cycleMonths = 146097, 4800

// Dates returns the dates in [first, last] the rule matches, counting from
// anchor (ignored when the rule needs none). At most localtime.MaxDates.
func (r Rule) Dates(anchor, first, last localtime.Date) ([]localtime.Date, error) {
	if last.Before(first) {
		return nil, nil
	}
	if r.IsZero() {
		var out []localtime.Date
		for d := first; !last.Before(d) && len(out) < localtime.MaxDates; d = d.AddDays(1) {
			out = append(out, d)
		}
		return out, nil
	}
	start := anchor.Midnight()
	if !r.anchored {
		// Nothing depends on where it starts: start at the span.
		start = first.Midnight()
	} else if r.opt.Count == 0 {
		start = r.rebase(start, first.Midnight())
	}
	rr, err := r.at(start)
	if err != nil {
		return nil, err
	}
	var out []localtime.Date
	for _, t := range rr.Between(first.Midnight(), last.Midnight(), true) {
		if len(out) == localtime.MaxDates {
			break
		}
		out = append(out, localtime.Date{Year: t.Year(), Month: t.Month(), Day: t.Day()})
	}
	return out, nil
}

// rebase moves start forward, towards to and not past it, by whole
// periods of the rule that keep every date it matches after the new start:
// INTERVAL days or weeks for DAILY and WEEKLY, INTERVAL periods that are
// also whole 400-year cycles for MONTHLY and YEARLY.
func (r Rule) rebase(start, to time.Time) time.Time {
	if !start.Before(to) {
		return start
	}
	n := max(r.opt.Interval, 1)
	days := int(to.Sub(start).Hours() / 24)
	switch r.opt.Freq {
	case rrule.DAILY:
		return start.AddDate(0, 0, days/n*n)
	case rrule.WEEKLY:
		step := 7 * n
		return start.AddDate(0, 0, days/step*step)
	case rrule.MONTHLY:
		step := lcm(n, cycleMonths)
		months := days / 31 // an underestimate: never past to
		return start.AddDate(0, months/step*step, 0)
	default: // YEARLY
		step := lcm(n, cycleMonths/12)
		years := days / 366
		return start.AddDate(years/step*step, 0, 0)
	}
}

func lcm(a, b int) int {
	x, y := a, b
	for y != 0 {
		x, y = y, x%y
	}
	return a / x * b
}
