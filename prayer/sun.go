package prayer

import "math"

// The solar position and rise/set/transit formulas below are those of Jean
// Meeus, Astronomical Algorithms (2nd ed.): chapter 7 (Julian day), 12
// (sidereal time), 13 (altitude), 15 (rising, transit and setting with
// interpolation between three days), 22 (nutation and obliquity) and 25
// (solar coordinates, low accuracy: about 0.01°, a few seconds of time).

const rad = math.Pi / 180

func sin(d float64) float64  { return math.Sin(d * rad) }
func cos(d float64) float64  { return math.Cos(d * rad) }
func asin(x float64) float64 { return math.Asin(x) / rad }

// unwind brings an angle into [0, 360).
func unwind(d float64) float64 {
	d = math.Mod(d, 360)
	if d < 0 {
		d += 360
	}
	return d
}

// shift brings an angle into [-180, 180).
func shift(d float64) float64 {
	return unwind(d+180) - 180
}

// julianDay is the Julian day at 0h UT of a Gregorian date (Meeus 7.1).
func julianDay(y, m, d int) float64 {
	if m <= 2 {
		y--
		m += 12
	}
	a := y / 100
	b := 2 - a + a/4
	return math.Floor(365.25*float64(y+4716)) + math.Floor(30.6001*float64(m+1)) + float64(d+b) - 1524.5
}

// sunPos is the sun's apparent place at 0h UT of a day, in degrees.
type sunPos struct {
	dec  float64 // declination δ
	ra   float64 // right ascension α
	gast float64 // apparent sidereal time at Greenwich Θ0
}

// sunAt is the sun's apparent place at Julian day jd.
func sunAt(jd float64) sunPos {
	t := (jd - 2451545) / 36525
	l0 := unwind(280.46646 + 36000.76983*t + 0.0003032*t*t) // mean longitude (25.2)
	m := unwind(357.52911 + 35999.05029*t - 0.0001537*t*t)  // mean anomaly (25.3)
	c := (1.914602-0.004817*t-0.000014*t*t)*sin(m) +        // equation of the centre
		(0.019993-0.000101*t)*sin(2*m) + 0.000289*sin(3*m)
	omega := unwind(125.04452 - 1934.136261*t + 0.0020708*t*t + t*t*t/450000) // lunar node (22)
	lambda := unwind(l0 + c - 0.00569 - 0.00478*sin(omega))                   // apparent longitude (25.8)
	lm := unwind(218.3165 + 481267.8813*t)                                    // moon's mean longitude

	eps0 := 23.439291 - 0.013004167*t - 1.639e-7*t*t + 5.036e-7*t*t*t // mean obliquity (22.2)
	eps := eps0 + 0.00256*cos(omega)                                  // apparent obliquity (25.8)

	dpsi := (-17.2*sin(omega) - 1.32*sin(2*l0) - 0.23*sin(2*lm) + 0.21*sin(2*omega)) / 3600 // nutation in longitude
	deps := (9.2*cos(omega) + 0.57*cos(2*l0) + 0.1*cos(2*lm) - 0.09*cos(2*omega)) / 3600    // nutation in obliquity

	theta0 := unwind(280.46061837 + 360.98564736629*(jd-2451545) + 0.000387933*t*t - t*t*t/38710000) // mean sidereal time (12.4)
	return sunPos{
		dec:  asin(sin(eps) * sin(lambda)),
		ra:   unwind(math.Atan2(cos(eps)*sin(lambda), cos(lambda)) / rad),
		gast: theta0 + dpsi*cos(eps0+deps), // equation of the equinoxes
	}
}

// interpolate is Meeus 3.3: y2 at the middle day, y1 the day before, y3 the
// day after, n the fraction of a day from the middle one.
func interpolate(y2, y1, y3, n float64) float64 {
	a, b := y2-y1, y3-y2
	return y2 + n/2*(a+b+n*(b-a))
}

// interpolateAngle is interpolate for angles that may wrap past 360.
func interpolateAngle(y2, y1, y3, n float64) float64 {
	a, b := shift(y2-y1), shift(y3-y2)
	return y2 + n/2*(a+b+n*(b-a))
}

// altitude is the altitude of a body of declination dec at hour angle h seen
// from latitude lat (13.6).
func altitude(lat, dec, h float64) float64 {
	return asin(sin(lat)*sin(dec) + cos(lat)*cos(dec)*cos(h))
}

// solarDay is one UT day's sun seen from one place: its transit and the
// instants it crosses a given altitude, as hours after 0h UT of that day.
type solarDay struct {
	lat, lon        float64 // degrees, east positive
	prev, cur, next sunPos
	m0              float64 // approximate transit, a fraction of the day
	transit         float64 // hours UT
	sunrise, sunset float64 // hours UT; NaN when the sun does not cross the horizon
}

func newSolarDay(lat, lon, horizon float64, prev, cur, next sunPos) solarDay {
	s := solarDay{lat: lat, lon: lon, prev: prev, cur: cur, next: next}
	s.m0 = unwind(cur.ra-lon-cur.gast) / 360
	theta := cur.gast + 360.985647*s.m0
	ra := interpolateAngle(cur.ra, prev.ra, next.ra, s.m0)
	s.transit = (s.m0 - shift(theta+lon-ra)/360) * 24
	s.sunrise = s.hourAngle(horizon, false)
	s.sunset = s.hourAngle(horizon, true)
	return s
}

// hourAngle is the time the sun is at altitude h (degrees) before or after
// transit, in hours UT, with one correction step (Meeus 15.2); NaN when the
// sun never reaches h that day.
func (s *solarDay) hourAngle(h float64, after bool) float64 {
	x := (sin(h) - sin(s.lat)*sin(s.cur.dec)) / (cos(s.lat) * cos(s.cur.dec))
	if x < -1 || x > 1 || math.IsNaN(x) {
		return math.NaN()
	}
	h0 := math.Acos(x) / rad
	m := s.m0 - h0/360
	if after {
		m = s.m0 + h0/360
	}
	// Meeus corrects once, which is what the timetables match; where the
	// sun only grazes the altitude (high latitudes) one step leaves tenths
	// of a degree, so repeat while a step moves the time over 30 seconds.
	for i := 0; i < 5; i++ {
		theta := s.cur.gast + 360.985647*m
		ra := interpolateAngle(s.cur.ra, s.prev.ra, s.next.ra, m)
		dec := interpolate(s.cur.dec, s.prev.dec, s.next.dec, m)
		ha := theta + s.lon - ra
		dm := (altitude(s.lat, dec, ha) - h) / (360 * cos(dec) * cos(s.lat) * sin(ha))
		if math.IsNaN(dm) || math.Abs(dm) > 0.1 {
			return math.NaN() // the step diverges: the sun does not cross h near here
		}
		m += dm
		if math.Abs(dm) < 30.0/86400 {
			break
		}
	}
	r := m * 24
	if math.IsNaN(r) || math.IsInf(r, 0) || after && r <= s.transit || !after && r >= s.transit {
		return math.NaN() // no crossing, or the steps found the one on the other side of noon
	}
	return r
}

// afternoon is the time after transit when an object's shadow is its
// length times shadow plus its noon shadow: the asr time.
func (s *solarDay) afternoon(shadow float64) float64 {
	// The noon shadow uses the declination at 0h UT, as the published
	// timetables do (testdata): at the transit itself it differs by up to
	// 0.2°, and asr by up to a minute.
	noon := math.Abs(s.lat - s.cur.dec)
	h := math.Atan(1/(shadow+math.Tan(noon*rad))) / rad
	return s.hourAngle(h, true)
}
