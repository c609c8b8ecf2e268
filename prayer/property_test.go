package prayer_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/chime-dev/chime/prayer"
)

// The sun's place by the Astronomical Almanac's low-precision formulas
// (about 0.01°), written apart from the package's Meeus code so that the
// checks below do not agree with it by construction.
const rad = math.Pi / 180

func sunPlace(t time.Time) (dec, ra, gmst float64) {
	n := float64(t.UnixNano())/86400e9 + 2440587.5 - 2451545
	l := 280.460 + 0.9856474*n
	g := (357.528 + 0.9856003*n) * rad
	lambda := (l + 1.915*math.Sin(g) + 0.020*math.Sin(2*g)) * rad
	eps := (23.439 - 0.0000004*n) * rad
	dec = math.Asin(math.Sin(eps)*math.Sin(lambda)) / rad
	ra = math.Atan2(math.Cos(eps)*math.Sin(lambda), math.Cos(lambda)) / rad
	gmst = 280.46061837 + 360.98564736629*n
	return dec, ra, gmst
}

// hourAngleAt is the sun's local hour angle at t, in (-180, 180].
func hourAngleAt(t time.Time, lon float64) float64 {
	_, ra, gmst := sunPlace(t)
	return math.Remainder(gmst+lon-ra, 360)
}

func altitudeAt(t time.Time, lat, lon float64) float64 {
	dec, _, _ := sunPlace(t)
	h := hourAngleAt(t, lon) * rad
	return math.Asin(math.Sin(lat*rad)*math.Sin(dec*rad)+math.Cos(lat*rad)*math.Cos(dec*rad)*math.Cos(h)) / rad
}

// solarNoon is the instant near t the sun crosses the meridian.
func solarNoon(t time.Time, lon float64) time.Time {
	for range 4 {
		t = t.Add(-time.Duration(hourAngleAt(t, lon) / 360.9856 * 86400e9))
	}
	return t
}

// TestOrderNoonAndAltitudes computes 3,000 random places between 65°S and
// 65°N, random dates 2000–2040 and random conventions and madhabs (with no
// minute adjustments, unrounded) and checks: fajr < sunrise < dhuhr < asr <
// maghrib < isha; dhuhr within a minute of the solar noon found from the
// independent formulas; the sun at sunrise and maghrib at -0.833°, at asr
// where the madhab's shadow is, and at fajr and isha at their angle unless
// a high-latitude rule moved them, in which case the sun is above the angle
// and (but for the Moonsighting Committee's seasonal rule) the time is the
// rule's portion of the night.
func TestOrderNoonAndAltitudes(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 1))
	const tol = 0.05 // degrees: both formulas' errors and the truncation to the second
	for i := range 3000 {
		c := prayer.Coordinates{Latitude: rng.Float64()*130 - 65, Longitude: rng.Float64()*360 - 180}
		d := prayer.DateOf(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, rng.IntN(41*365)))
		method := prayer.Methods[rng.IntN(len(prayer.Methods))]
		p, err := prayer.MethodParams(string(method))
		if err != nil {
			t.Fatal(err)
		}
		p.MethodAdjustments, p.Rounding = prayer.Adjustments{}, prayer.None
		if rng.IntN(2) == 0 {
			p.Madhab = prayer.Hanafi
		}
		p.HighLatitudeRule = prayer.HighLatitudeRules[rng.IntN(3)]
		// A zone of the place's own mean solar time, as most zones roughly are.
		zone := time.FixedZone("", int(math.Round(c.Longitude/15))*3600)
		got, err := prayer.Compute(d, zone, c, p)
		if err != nil {
			t.Fatal(err)
		}
		where := func() string {
			return fmt.Sprintf("case %d: %s %s %s at %.3f,%.3f", i, d, method, p.HighLatitudeRule, c.Latitude, c.Longitude)
		}
		seq := []time.Time{got.Fajr, got.Sunrise, got.Dhuhr, got.Asr, got.Maghrib, got.Isha}
		for j := 1; j < len(seq); j++ {
			if !seq[j-1].Before(seq[j]) {
				t.Fatalf("%s: %s %s is not before %s %s", where(), prayer.Prayers[j-1], seq[j-1], prayer.Prayers[j], seq[j])
			}
		}
		if noon := solarNoon(got.Dhuhr, c.Longitude); got.Dhuhr.Sub(noon).Abs() > time.Minute {
			t.Errorf("%s: dhuhr %s, solar noon %s", where(), got.Dhuhr, noon)
		}
		// Where the noon sun is barely up the polar rule takes the times of
		// a latitude nearer the equator (Times.Latitude); check them there.
		alt := func(at time.Time) float64 { return altitudeAt(at, got.Latitude, c.Longitude) }
		for _, x := range []struct {
			name string
			at   time.Time
		}{{"sunrise", got.Sunrise}, {"maghrib", got.Maghrib}} {
			if x.name == "maghrib" && p.MaghribAngle > 0 {
				continue
			}
			if a := alt(x.at); math.Abs(a+0.8333) > tol {
				t.Errorf("%s: sun at %s is %.3f°, want -0.833°", where(), x.name, a)
			}
		}
		shadow := 1.0
		if p.Madhab == prayer.Hanafi {
			shadow = 2
		}
		// Asr's noon shadow uses the declination at 0h UT, as the official
		// timetables do.
		dec, _, _ := sunPlace(got.Dhuhr.Truncate(24 * time.Hour))
		wantAsr := math.Atan(1/(shadow+math.Tan(math.Abs(got.Latitude-dec)*rad))) / rad
		if a := alt(got.Asr); math.Abs(a-wantAsr) > tol {
			t.Errorf("%s: sun at asr is %.3f°, want %.3f°", where(), a, wantAsr)
		}

		// A rule's portion of the night is measured from sunset to the
		// next sunrise.
		next, err := prayer.Compute(d.AddDays(1), zone, c, p)
		if err != nil {
			t.Fatal(err)
		}
		night := next.Sunrise.Sub(got.Maghrib)
		fp, ip := 0.5, 0.5
		switch p.HighLatitudeRule {
		case prayer.SeventhOfTheNight:
			fp, ip = 1.0/7, 1.0/7
		case prayer.TwilightAngle:
			fp, ip = p.FajrAngle/60, p.IshaAngle/60
		}
		if a := alt(got.Fajr); math.Abs(a+p.FajrAngle) > tol {
			if a < -p.FajrAngle {
				t.Errorf("%s: sun at fajr is %.3f°, below its angle %g° yet the time is not the angle's", where(), a, p.FajrAngle)
			}
			rule := got.Sunrise.Add(-time.Duration(fp * float64(night)))
			if start := time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, zone); rule.Before(start) {
				rule = start // a rule's time is held on the local date
			}
			if method != prayer.MoonsightingCommittee && p.MaghribAngle == 0 && got.Fajr.Sub(rule).Abs() > 2*time.Second {
				t.Errorf("%s: fajr %s is neither at %g° (sun at %.3f°) nor the rule's %s", where(), got.Fajr, p.FajrAngle, a, rule)
			}
		}
		if p.IshaInterval > 0 {
			if dur := got.Isha.Sub(got.Maghrib); dur != time.Duration(p.IshaInterval)*time.Minute && dur != time.Duration(p.RamadanIshaInterval)*time.Minute {
				t.Errorf("%s: isha %s after maghrib, want %d min", where(), dur, p.IshaInterval)
			}
		} else if a := alt(got.Isha); math.Abs(a+p.IshaAngle) > tol {
			if a < -p.IshaAngle {
				t.Errorf("%s: sun at isha is %.3f°, below its angle %g° yet the time is not the angle's", where(), a, p.IshaAngle)
			}
			rule := got.Maghrib.Add(time.Duration(ip * float64(night)))
			if last := time.Date(d.Year, d.Month, d.Day+1, 0, 0, 0, 0, zone).Add(-time.Minute); rule.After(last) {
				rule = last
			}
			if method != prayer.MoonsightingCommittee && p.MaghribAngle == 0 && got.Isha.Sub(rule).Abs() > 2*time.Second {
				t.Errorf("%s: isha %s is neither at %g° (sun at %.3f°) nor the rule's %s", where(), got.Isha, p.IshaAngle, a, rule)
			}
		}
		if !got.MiddleOfNight.After(got.Isha) && !got.MiddleOfNight.Equal(got.Isha) && got.MiddleOfNight.Before(got.Maghrib) {
			t.Errorf("%s: middle of the night %s before maghrib", where(), got.MiddleOfNight)
		}
		if !(got.Maghrib.Before(got.MiddleOfNight) && got.MiddleOfNight.Before(got.LastThirdOfNight) && got.LastThirdOfNight.Before(next.Fajr.Add(time.Second))) {
			t.Errorf("%s: night times out of order: maghrib %s, middle %s, last third %s, next fajr %s",
				where(), got.Maghrib, got.MiddleOfNight, got.LastThirdOfNight, next.Fajr)
		}
	}
}

// TestPolarDayAndNight computes every day of 2026 at places where the sun
// does not rise or does not set for weeks (Tromsø, Longyearbyen, McMurdo)
// and checks the documented rule: no zero instants, fajr..isha ordered and
// on the local date, Polar set in midsummer and midwinter, and the times
// those of Times.Latitude, the nearest latitude (in half degrees) where
// the sun rises and sets.
func TestPolarDayAndNight(t *testing.T) {
	for _, place := range []struct {
		name string
		zone string
		c    prayer.Coordinates
	}{
		{"tromso", "Europe/Oslo", prayer.Coordinates{Latitude: 69.6492, Longitude: 18.9553}},
		{"longyearbyen", "Arctic/Longyearbyen", prayer.Coordinates{Latitude: 78.2232, Longitude: 15.6267}},
		{"mcmurdo", "Antarctica/McMurdo", prayer.Coordinates{Latitude: -77.846, Longitude: 166.676}},
	} {
		t.Run(place.name, func(t *testing.T) {
			loc, err := time.LoadLocation(place.zone)
			if err != nil {
				t.Fatal(err)
			}
			for _, method := range []prayer.Method{prayer.MuslimWorldLeague, prayer.MoonsightingCommittee, prayer.UmmAlQura} {
				p, _ := prayer.MethodParams(string(method))
				polarDays := 0
				for d := (prayer.Date{Year: 2026, Month: 1, Day: 1}); d.Year == 2026; d = d.AddDays(1) {
					got, err := prayer.Compute(d, loc, place.c, p)
					if err != nil {
						t.Fatalf("%s: %v", d, err)
					}
					seq := []time.Time{got.Fajr, got.Sunrise, got.Dhuhr, got.Asr, got.Maghrib, got.Isha}
					for j, x := range seq {
						// Where the sun still rises and sets its times are its
						// own, and a Tromsø sunset in May is after midnight;
						// a polar day's are held on the date.
						if x.IsZero() || (got.Polar || j == 2) && prayer.DateOf(x.In(loc)) != d {
							t.Fatalf("%s %s: %s %s is not on the local date", d, method, prayer.Prayers[j], x.In(loc))
						}
						if j > 0 && !seq[j-1].Before(x) {
							t.Fatalf("%s %s: %s %s not before %s %s", d, method, prayer.Prayers[j-1], seq[j-1].In(loc), prayer.Prayers[j], x.In(loc))
						}
					}
					if got.MiddleOfNight.Before(got.Maghrib) || got.LastThirdOfNight.Before(got.MiddleOfNight) {
						t.Fatalf("%s %s: night times %s %s", d, method, got.MiddleOfNight, got.LastThirdOfNight)
					}
					if !got.Polar {
						continue
					}
					polarDays++
					at := place.c
					at.Latitude = got.Latitude
					there, _ := prayer.Compute(d, loc, at, p)
					// Those the date does not hold (a sunset after midnight)
					// are held at its end.
					same := func(a, b time.Time) bool {
						return b.Sub(a).Abs() <= time.Minute || prayer.DateOf(a.In(loc)) != d && b.Sub(a).Abs() < 3*time.Hour
					}
					if there.Polar || !same(there.Sunrise, got.Sunrise) || there.Dhuhr != got.Dhuhr || there.Asr != got.Asr || !same(there.Maghrib, got.Maghrib) {
						t.Fatalf("%s %s: polar times %v are not those of latitude %g: %v", d, method, got, got.Latitude, there)
					}
					at.Latitude += math.Copysign(0.5, got.Latitude)
					if beyond, _ := prayer.Compute(d, loc, at, p); !beyond.Polar {
						t.Fatalf("%s %s: latitude %g is not the nearest where the sun rises and sets", d, method, got.Latitude)
					}
				}
				for _, d := range []prayer.Date{{Year: 2026, Month: 6, Day: 21}, {Year: 2026, Month: 12, Day: 21}} {
					if got, _ := prayer.Compute(d, loc, place.c, p); !got.Polar {
						t.Errorf("%s %s: not polar", d, method)
					}
				}
				t.Logf("%s: %d polar days in 2026", method, polarDays)
			}
		})
	}
}

// TestFarFromTheMeridian computes a year at Kiritimati (UTC+14, 157°W),
// whose local noon is near 0h UT of the next day, and checks each date's
// dhuhr is on that local date near noon, not a day away.
func TestFarFromTheMeridian(t *testing.T) {
	loc, err := time.LoadLocation("Pacific/Kiritimati")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := prayer.MethodParams("muslim_world_league")
	c := prayer.Coordinates{Latitude: 1.87, Longitude: -157.43}
	for d := (prayer.Date{Year: 2026, Month: 1, Day: 1}); d.Year == 2026; d = d.AddDays(1) {
		got, err := prayer.Compute(d, loc, c, p)
		if err != nil {
			t.Fatal(err)
		}
		local := got.Dhuhr.In(loc)
		if prayer.DateOf(local) != d || local.Hour() < 12 || local.Hour() > 13 {
			t.Fatalf("%s: dhuhr at %s", d, local)
		}
	}
}

// TestSkippedDate asks for the date Samoa skipped (Pacific/Apia
// 2011-12-30) and checks ErrSkippedDate, and the days around it answer.
func TestSkippedDate(t *testing.T) {
	loc, err := time.LoadLocation("Pacific/Apia")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := prayer.MethodParams("")
	c := prayer.Coordinates{Latitude: -13.83, Longitude: -171.76}
	if _, err := prayer.Compute(prayer.Date{Year: 2011, Month: 12, Day: 30}, loc, c, p); !errors.Is(err, prayer.ErrSkippedDate) {
		t.Fatalf("2011-12-30: %v, want ErrSkippedDate", err)
	}
	for _, d := range []prayer.Date{{Year: 2011, Month: 12, Day: 29}, {Year: 2011, Month: 12, Day: 31}} {
		got, err := prayer.Compute(d, loc, c, p)
		if err != nil || prayer.DateOf(got.Dhuhr.In(loc)) != d {
			t.Fatalf("%s: %v %s", d, err, got.Dhuhr.In(loc))
		}
	}
}

// TestUmmAlQuraRamadan checks isha is 120 minutes after maghrib in Ramadan
// 1437 (2016-06-20) and 90 outside it (2016-08-01) by Umm al-Qura.
func TestUmmAlQuraRamadan(t *testing.T) {
	loc, _ := time.LoadLocation("Asia/Riyadh")
	p, _ := prayer.MethodParams("umm_al_qura")
	c := prayer.Coordinates{Latitude: 21.4225, Longitude: 39.8262}
	for _, x := range []struct {
		d    prayer.Date
		want time.Duration
	}{{prayer.Date{Year: 2016, Month: 6, Day: 20}, 120 * time.Minute}, {prayer.Date{Year: 2016, Month: 8, Day: 1}, 90 * time.Minute}} {
		got, _ := prayer.Compute(x.d, loc, c, p)
		if dur := got.Isha.Sub(got.Maghrib); dur != x.want {
			t.Errorf("%s: isha %s after maghrib, want %s", x.d, dur, x.want)
		}
	}
}

// TestBadInput checks each coordinate and parameter out of range is an
// *prayer.Error naming its field.
func TestBadInput(t *testing.T) {
	good, _ := prayer.MethodParams("")
	ok := prayer.Coordinates{Latitude: 10, Longitude: 10}
	for _, x := range []struct {
		field string
		c     prayer.Coordinates
		p     func(*prayer.Params)
	}{
		{"latitude", prayer.Coordinates{Latitude: 90.5}, nil},
		{"latitude", prayer.Coordinates{Latitude: math.NaN()}, nil},
		{"longitude", prayer.Coordinates{Longitude: -181}, nil},
		{"elevation", prayer.Coordinates{Elevation: 9001}, nil},
		{"method", ok, func(p *prayer.Params) { p.Method = "MWL" }},
		{"fajr_angle", ok, func(p *prayer.Params) { p.FajrAngle = 0 }},
		{"fajr_angle", ok, func(p *prayer.Params) { p.FajrAngle = 31 }},
		{"isha_angle", ok, func(p *prayer.Params) { p.IshaAngle = -1 }},
		{"isha_angle", ok, func(p *prayer.Params) { p.IshaAngle, p.IshaInterval = 0, 0 }},
		{"isha_interval", ok, func(p *prayer.Params) { p.IshaInterval = 241 }},
		{"maghrib_angle", ok, func(p *prayer.Params) { p.MaghribAngle = 11 }},
		{"madhab", ok, func(p *prayer.Params) { p.Madhab = "maliki" }},
		{"high_latitude_rule", ok, func(p *prayer.Params) { p.HighLatitudeRule = "angle" }},
		{"rounding", ok, func(p *prayer.Params) { p.Rounding = "down" }},
		{"adjustments.isha", ok, func(p *prayer.Params) { p.Adjustments.Isha = 121 }},
	} {
		p := good
		if x.p != nil {
			x.p(&p)
		}
		_, err := prayer.Compute(prayer.Date{Year: 2026, Month: 3, Day: 1}, time.UTC, x.c, p)
		var pe *prayer.Error
		if !errors.As(err, &pe) || pe.Field != x.field {
			t.Errorf("want an error naming %s, got %v", x.field, err)
		}
	}
	if _, err := prayer.MethodParams("isna"); err == nil {
		t.Error("MethodParams(isna) is no error")
	}
}
