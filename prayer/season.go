package prayer

import (
	"math"
	"time"
)

// The Moonsighting Committee's twilight (Khalid Shaukat, moonsighting.com):
// fajr and isha are minutes from sunrise and sunset that grow with latitude
// and change with the season, linearly between four values per latitude at
// 0, 91, 137, 183, 229 and 275 days after the winter solstice (about
// December 21 in the north, June 21 in the south), rather than a fixed angle
// the sun may not reach in summer.

// twilight is the four values of one twilight, in minutes at 0° and their
// growth per 55° of latitude.
type twilight struct{ base, a, b, c, d float64 }

var morning = twilight{75, 28.65, 19.44, 32.74, 48.1}

func evening(s Shafaq) twilight {
	switch s {
	case Ahmer:
		return twilight{62, 17.4, -7.16, 5.12, 19.44}
	case Abyad:
		return twilight{75, 25.6, 7.16, 36.84, 81.84}
	}
	return twilight{75, 25.6, 2.05, -9.21, 6.14}
}

// seasonalTwilight is the twilight's length at latitude on date d.
func seasonalTwilight(tw twilight, latitude float64, d Date) time.Duration {
	l := math.Abs(latitude) / 55
	a, b, c, dd := tw.base+tw.a*l, tw.base+tw.b*l, tw.base+tw.c*l, tw.base+tw.d*l
	n := float64(daysSinceSolstice(d, latitude))
	var m float64
	switch {
	case n < 91:
		m = a + (b-a)/91*n
	case n < 137:
		m = b + (c-b)/46*(n-91)
	case n < 183:
		m = c + (dd-c)/46*(n-137)
	case n < 229:
		m = dd + (c-dd)/46*(n-183)
	case n < 275:
		m = c + (b-c)/46*(n-229)
	default:
		m = b + (a-b)/91*(n-275)
	}
	return time.Duration(math.Round(m*60)) * time.Second
}

func daysSinceSolstice(d Date, latitude float64) int {
	t := time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC)
	doy := t.YearDay()
	days := 365
	if leap(d.Year) {
		days = 366
	}
	if latitude >= 0 {
		n := doy + 10
		if n >= days {
			n -= days
		}
		return n
	}
	n := doy - (days - 365 + 172)
	if n < 0 {
		n += days
	}
	return n
}

func leap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// isRamadan says whether d is in the month of Ramadan of the tabular
// (arithmetic) Islamic calendar, epoch 16 July 622 (Julian), leap years 2,
// 5, 7, 10, 13, 16, 18, 21, 24, 26 and 29 of each 30. It can differ from a
// calendar by sighting, or Umm al-Qura's, by a day.
func isRamadan(d Date) bool {
	_, month := hijri(d)
	return month == 9
}

// hijri is the tabular Islamic year and month of d.
func hijri(d Date) (year, month int) {
	jd := int(julianDay(d.Year, int(d.Month), d.Day) + 0.5) // the civil day number, noon
	const epoch = 1948440                                   // 1 Muharram 1 AH
	n := jd - epoch                                         // days since the epoch
	cycle := n / 10631                                      // 30-year cycles of 10631 days
	r := n % 10631
	y := 0
	for y < 30 {
		length := 354
		if (14+11*(y+1))%30 < 11 {
			length = 355
		}
		if r < length {
			break
		}
		r -= length
		y++
	}
	year = cycle*30 + y + 1
	// Months alternate 30 and 29 days; the twelfth has 30 in a leap year.
	for month = 1; month < 12; month++ {
		length := 30 - (month+1)%2
		if r < length {
			break
		}
		r -= length
	}
	return year, month
}
