// Package prayer computes the Islamic prayer times of a place and a local
// date from the sun's position, by the conventions authorities publish their
// timetables with (docs/prayer-times.md).
//
// The astronomy is Meeus's (Astronomical Algorithms): the sun's apparent
// place at 0h UT of the day before, of and after the date, interpolated to
// the instant it crosses each altitude. A time is the instant the sun is at
// the convention's angle below the horizon (fajr, isha, Tehran's maghrib),
// at the horizon allowing for refraction and the sun's radius (sunrise,
// maghrib: 0.833°, more with elevation), at its highest (dhuhr), or where a
// shadow reaches its length times the madhab's factor plus its noon length
// (asr). Times are rounded to the minute as timetables are, after the
// convention's and the caller's minute adjustments.
//
// Rules where the sun does not oblige:
//   - High latitudes (the sun never reaches the fajr or isha angle, or
//     reaches it late): fajr is never earlier than sunrise minus a portion of
//     the night (sunset to next sunrise) and isha never later than sunset
//     plus it; the portion is the HighLatitudeRule's. The Moonsighting
//     Committee uses its own seasonal twilight instead, and a seventh of the
//     night from 55° on.
//   - Polar day or night (the sun does not rise or does not set on the date
//     or the next day): every time is that of the nearest latitude, toward
//     the equator in steps of half a degree on the same meridian, where it
//     does (Times.Polar and Times.Latitude say so).
//   - A fajr or isha set by either rule stays on the local date: it is held
//     at 00:00 or 23:59 local time rather than cross midnight. A fajr or isha
//     the sun's angle sets is left as it is, even after midnight (the clock
//     of western China, say, runs hours ahead of the sun).
//
// Compute never returns NaN instants and never panics; the times of one
// date are ordered fajr < sunrise < dhuhr < asr < maghrib < isha wherever
// the sun rises and sets (and at every latitude under the polar rule).
// MiddleOfNight and LastThirdOfNight belong to the night that begins at the
// date's maghrib, so they usually fall on the next local date.
package prayer

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/chime-dev/chime/localtime"
)

// Prayer names one of the times, as the API and JSON spell it.
type Prayer string

const (
	Fajr             Prayer = "fajr"
	Sunrise          Prayer = "sunrise"
	Dhuhr            Prayer = "dhuhr"
	Asr              Prayer = "asr"
	Maghrib          Prayer = "maghrib"
	Isha             Prayer = "isha"
	MiddleOfNight    Prayer = "middle_of_night"
	LastThirdOfNight Prayer = "last_third_of_night"
)

// Prayers lists every time in the order of the day.
var Prayers = []Prayer{Fajr, Sunrise, Dhuhr, Asr, Maghrib, Isha, MiddleOfNight, LastThirdOfNight}

// ParsePrayer reads a prayer's name.
func ParsePrayer(s string) (Prayer, error) {
	for _, p := range Prayers {
		if string(p) == s {
			return p, nil
		}
	}
	return "", &Error{Field: "prayer", Reason: fmt.Sprintf("unknown prayer %q; one of %v", s, Prayers)}
}

// Coordinates are a place on the earth.
type Coordinates struct {
	Latitude  float64 `json:"latitude"`            // degrees north, -90 to 90
	Longitude float64 `json:"longitude"`           // degrees east, -180 to 180
	Elevation float64 `json:"elevation,omitempty"` // metres above sea level, MinElevation to MaxElevation
}

// Bounds of Coordinates.Elevation, in metres: the Dead Sea shore to above
// Everest.
const (
	MinElevation = -500.0
	MaxElevation = 9000.0
)

// Validate reports a coordinate out of its range as an *Error.
func (c Coordinates) Validate() error {
	switch {
	case !(c.Latitude >= -90 && c.Latitude <= 90):
		return &Error{Field: "latitude", Reason: "must be -90 to 90 degrees"}
	case !(c.Longitude >= -180 && c.Longitude <= 180):
		return &Error{Field: "longitude", Reason: "must be -180 to 180 degrees"}
	case !(c.Elevation >= MinElevation && c.Elevation <= MaxElevation):
		return &Error{Field: "elevation", Reason: fmt.Sprintf("must be %g to %g metres", MinElevation, MaxElevation)}
	}
	return nil
}

// Date is a civil date in the place's own calendar: the one date type of
// the reminders' rules (package localtime).
type Date = localtime.Date

// DateOf is the date of t in t's location.
func DateOf(t time.Time) Date { return localtime.DateOf(t, t.Location()) }

// ParseDate reads YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	d, err := localtime.ParseDate(s)
	if err != nil {
		return Date{}, &Error{Field: "date", Reason: "must be YYYY-MM-DD"}
	}
	return d, nil
}

// Times are one date's times, as UTC instants.
type Times struct {
	Fajr, Sunrise, Dhuhr, Asr, Maghrib, Isha time.Time
	MiddleOfNight, LastThirdOfNight          time.Time
	// Polar is set when the sun did not rise or set at the place, and the
	// times are those of Latitude instead.
	Polar    bool
	Latitude float64 // the latitude the times were computed for
}

// Of is the time of one prayer.
func (t Times) Of(p Prayer) time.Time {
	switch p {
	case Fajr:
		return t.Fajr
	case Sunrise:
		return t.Sunrise
	case Dhuhr:
		return t.Dhuhr
	case Asr:
		return t.Asr
	case Maghrib:
		return t.Maghrib
	case Isha:
		return t.Isha
	case MiddleOfNight:
		return t.MiddleOfNight
	case LastThirdOfNight:
		return t.LastThirdOfNight
	}
	return time.Time{}
}

// ErrSkippedDate is a date the zone's clocks skip whole (Pacific/Apia
// 2011-12-30): it has no times.
var ErrSkippedDate = errors.New("the zone skips this date")

// Compute returns the times of local date d at c by p, in zone loc (nil is
// UTC). Its errors are *Error for coordinates or parameters out of range,
// and ErrSkippedDate.
func Compute(d Date, loc *time.Location, c Coordinates, p Params) (Times, error) {
	if err := c.Validate(); err != nil {
		return Times{}, err
	}
	if err := p.Validate(); err != nil {
		return Times{}, err
	}
	if loc == nil {
		loc = time.UTC
	}
	start := time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
	end := time.Date(d.Year, d.Month, d.Day+1, 0, 0, 0, 0, loc)
	if DateOf(start.In(loc)) != d && DateOf(end.Add(-time.Second).In(loc)) != d {
		return Times{}, ErrSkippedDate
	}
	if p.HighLatitudeRule == "" {
		p.HighLatitudeRule = RecommendedRule(c.Latitude)
	}

	// The astronomy is done for a UT day; it is the local date's unless the
	// zone is far enough from the meridian that the sun's transit on that UT
	// day falls on another local date (Pacific/Kiritimati, UTC+14).
	base := d
	var sun [5]sunPos
	var today day
	for try := 0; ; try++ {
		jd := julianDay(base.Year, int(base.Month), base.Day)
		for i := range sun {
			sun[i] = sunAt(jd + float64(i-1))
		}
		today = computeDay(d, base, sun[0:4], c, p)
		got := DateOf(today.dhuhr.In(loc))
		if got == d || try == 2 {
			break
		}
		if got.Midnight().Before(d.Midnight()) {
			base = base.AddDays(1)
		} else {
			base = base.AddDays(-1)
		}
	}
	next := computeDay(d.AddDays(1), base.AddDays(1), sun[1:5], c, p)
	// As with tomorrow's sunrise, the next UT day's transit can be on either
	// side of 0h UT; the next fajr is the one of the next solar day.
	if gap := next.dhuhr.Sub(today.dhuhr); gap < 12*time.Hour {
		next.fajr = next.fajr.Add(24 * time.Hour)
	} else if gap > 36*time.Hour {
		next.fajr = next.fajr.Add(-24 * time.Hour)
	}

	t := p.finish(today, start, end)
	// The night of the Sunnah times is from maghrib to the next fajr, both
	// as adjusted and held.
	nextEnd := time.Date(d.Year, d.Month, d.Day+2, 0, 0, 0, 0, loc)
	night := max(p.finish(next, end, nextEnd).Fajr.Sub(t.Maghrib), 0)
	t.MiddleOfNight = p.round(t.Maghrib.Add(night / 2))
	t.LastThirdOfNight = p.round(t.Maghrib.Add(night * 2 / 3))
	return t, nil
}

// finish adjusts and rounds a day's times and holds those a rule set on
// the local date from start to end.
func (p Params) finish(dy day, start, end time.Time) Times {
	t := Times{
		Fajr:     p.round(dy.fajr.Add(minutes(p.MethodAdjustments.Fajr + p.Adjustments.Fajr))),
		Sunrise:  p.round(dy.sunrise.Add(minutes(p.MethodAdjustments.Sunrise + p.Adjustments.Sunrise))),
		Dhuhr:    p.round(dy.dhuhr.Add(minutes(p.MethodAdjustments.Dhuhr + p.Adjustments.Dhuhr))),
		Asr:      p.round(dy.asr.Add(minutes(p.MethodAdjustments.Asr + p.Adjustments.Asr))),
		Maghrib:  p.round(dy.maghrib.Add(minutes(p.MethodAdjustments.Maghrib + p.Adjustments.Maghrib))),
		Isha:     p.round(dy.isha.Add(minutes(p.MethodAdjustments.Isha + p.Adjustments.Isha))),
		Polar:    dy.polar,
		Latitude: dy.lat,
	}
	last := end.Add(-time.Minute)
	switch {
	case dy.polar:
		keepOnDate(&t, start, last)
	default:
		if dy.ruledFajr && t.Fajr.Before(start) && start.Before(t.Sunrise) {
			t.Fajr = start
		}
		if dy.ruledIsha && t.Isha.After(last) && last.After(t.Maghrib) {
			t.Isha = last
		}
	}
	return t
}

// keepOnDate holds a polar day's six times within [first, last] and a
// minute apart in their order: they are another latitude's, and its sun
// can set after local midnight where the clock runs ahead of the sun.
func keepOnDate(t *Times, first, last time.Time) {
	seq := [...]*time.Time{&t.Fajr, &t.Sunrise, &t.Dhuhr, &t.Asr, &t.Maghrib, &t.Isha}
	for i, x := range seq {
		if x.Before(first) {
			*x = first
		}
		if x.After(last) {
			*x = last
		}
		if i > 0 && !seq[i-1].Before(*x) {
			*x = seq[i-1].Add(time.Minute)
		}
	}
	if end := seq[len(seq)-1]; end.After(last) {
		*end = last
	}
	for i := len(seq) - 2; i >= 0; i-- {
		if limit := seq[i+1].Add(-time.Minute); seq[i].After(limit) {
			*seq[i] = limit
		}
	}
}

func minutes(n int) time.Duration { return time.Duration(n) * time.Minute }

func (p Params) round(t time.Time) time.Time {
	switch p.Rounding {
	case Up:
		if r := t.Truncate(time.Minute); !r.Equal(t) {
			return r.Add(time.Minute)
		}
		return t
	case None:
		return t
	}
	return t.Round(time.Minute)
}

// day is one date's times before adjustments and rounding.
type day struct {
	fajr, sunrise, dhuhr, asr, maghrib, isha time.Time
	ruledFajr, ruledIsha                     bool // set by a high-latitude or polar rule, not by the angle
	polar                                    bool
	lat                                      float64
}

// computeDay computes local date d's times from the sun on UT day base,
// with sun the sun's place on base-1, base, base+1 and base+2.
func computeDay(d, base Date, sun []sunPos, c Coordinates, p Params) day {
	horizon := -50.0 / 60
	if c.Elevation > 0 {
		horizon -= 0.0347 * math.Sqrt(c.Elevation) // the dip of the horizon seen from above it
	}
	out := day{lat: c.Latitude}
	var today, tomorrow solarDay
search:
	for {
		today = newSolarDay(out.lat, c.Longitude, horizon, sun[0], sun[1], sun[2])
		tomorrow = newSolarDay(out.lat, c.Longitude, horizon, sun[1], sun[2], sun[3])
		if usable(&today, &tomorrow) {
			break search
		}
		// Polar day or night: use the nearest latitude where the sun rises
		// and sets. The equator always qualifies, so this ends.
		out.polar = true
		switch {
		case out.lat == 0:
			break search // unreachable: the equator always qualifies; kept so this cannot loop
		case out.lat > 0.5:
			out.lat -= 0.5
		case out.lat < -0.5:
			out.lat += 0.5
		default:
			out.lat = 0
		}
	}
	if out.polar {
		out.ruledFajr, out.ruledIsha = true, true
	}

	mid := base.Midnight()
	at := func(hours float64) time.Time {
		return mid.Add(time.Duration(math.Floor(hours*3600)) * time.Second)
	}
	out.dhuhr = at(today.transit)
	out.sunrise = at(today.sunrise)
	sunset := at(today.sunset)
	night := at(nextSunrise(&today, &tomorrow)).Sub(sunset)

	shadow := 1.0
	if p.Madhab == Hanafi {
		shadow = 2
	}
	if h := today.afternoon(shadow); !math.IsNaN(h) {
		out.asr = at(h)
	} else {
		out.asr = out.dhuhr.Add(sunset.Sub(out.dhuhr) / 2) // unreachable where the sun sets; kept safe
	}

	mc := p.Method == MoonsightingCommittee
	fajrPortion, ishaPortion := p.portions(p.HighLatitudeRule)

	h := today.hourAngle(-p.FajrAngle, false)
	fajrOK := !math.IsNaN(h)
	if fajrOK {
		out.fajr = at(h)
	}
	if mc && out.lat >= 55 {
		out.fajr, fajrOK = out.sunrise.Add(-night/7), true
		out.ruledFajr = true
	}
	var safe time.Time
	if mc {
		safe = out.sunrise.Add(-seasonalTwilight(morning, out.lat, d))
	} else {
		safe = out.sunrise.Add(-time.Duration(fajrPortion * float64(night)).Truncate(time.Second))
	}
	if !fajrOK || safe.After(out.fajr) {
		out.fajr = safe
		out.ruledFajr = true
	}

	interval := p.IshaInterval
	if p.RamadanIshaInterval > 0 && interval > 0 && isRamadan(d) {
		interval = p.RamadanIshaInterval
	}
	if interval > 0 {
		out.isha = sunset.Add(minutes(interval))
	} else {
		h := today.hourAngle(-p.IshaAngle, true)
		ishaOK := !math.IsNaN(h)
		if ishaOK {
			out.isha = at(h)
		}
		if mc && out.lat >= 55 {
			out.isha, ishaOK = sunset.Add(night/7), true
			out.ruledIsha = true
		}
		var safe time.Time
		if mc {
			safe = sunset.Add(seasonalTwilight(evening(p.Shafaq), out.lat, d))
		} else {
			safe = sunset.Add(time.Duration(ishaPortion * float64(night)).Truncate(time.Second))
		}
		if !ishaOK || safe.Before(out.isha) {
			out.isha = safe
			out.ruledIsha = true
		}
	}

	out.maghrib = sunset
	if p.MaghribAngle > 0 {
		if h := today.hourAngle(-p.MaghribAngle, true); !math.IsNaN(h) {
			if m := at(h); m.After(sunset) && m.Before(out.isha) {
				out.maghrib = m
			}
		}
	}
	return out
}

// Where the sun barely rises or barely sets, asr (a shadow's length) and
// the portions of the night lose their meaning and the times their order,
// so a day counts as polar unless the sun's noon altitude leaves asr at
// least MinAsrGap after dhuhr and before sunset, and the night lasts at
// least MinNight.
const (
	MinAsrGap = 10 * time.Minute
	MinNight  = time.Hour
)

// usable says a day has a sunrise, transit, asr and sunset in that order
// and far enough apart, and a night of MinNight before tomorrow's sunrise.
func usable(today, tomorrow *solarDay) bool {
	if math.IsNaN(today.sunrise) || math.IsNaN(today.sunset) || math.IsNaN(tomorrow.sunrise) {
		return false
	}
	if math.Abs(today.lat) < 60 {
		return true // the noon sun is above 6.5° and the night over 5 hours: nothing to check
	}
	if math.Abs(today.lat-today.cur.dec) >= 89 { // the sun's noon altitude under 1°
		return false
	}
	shafi, hanafi := today.afternoon(1), today.afternoon(2)
	gap := MinAsrGap.Hours()
	return !math.IsNaN(shafi) && !math.IsNaN(hanafi) && today.sunrise < today.transit &&
		today.transit+gap <= shafi && hanafi+gap <= today.sunset &&
		nextSunrise(today, tomorrow)-today.sunset >= MinNight.Hours()
}

// nextSunrise is tomorrow's sunrise in hours after 0h UT today, the first
// after today's sunset: near 180° of longitude the two days' transits can
// fall either side of 0h UT.
func nextSunrise(today, tomorrow *solarDay) float64 {
	r := 24 + tomorrow.sunrise
	for r < today.sunset {
		r += 24
	}
	for r-today.sunset > 24 {
		r -= 24
	}
	return r
}
