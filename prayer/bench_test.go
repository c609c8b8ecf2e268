package prayer_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/chime-dev/chime/prayer"
)

// BenchmarkYear10000Locations computes a year of times (365 dates) for
// each of 10,000 random places between 65°S and 65°N by Muslim World
// League: one op is the 3.65 million Compute calls.
func BenchmarkYear10000Locations(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	places := make([]prayer.Coordinates, 10000)
	zones := make([]*time.Location, len(places))
	for i := range places {
		places[i] = prayer.Coordinates{Latitude: rng.Float64()*130 - 65, Longitude: rng.Float64()*360 - 180}
		zones[i] = time.FixedZone("", int(places[i].Longitude/15)*3600)
	}
	p, _ := prayer.MethodParams(string(prayer.MuslimWorldLeague))
	start := prayer.Date{Year: 2026, Month: 1, Day: 1}
	b.ReportAllocs()
	for b.Loop() {
		for i, c := range places {
			d := start
			for range 365 {
				if _, err := prayer.Compute(d, zones[i], c, p); err != nil {
					b.Fatal(err)
				}
				d = d.AddDays(1)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(365*float64(len(places))), "ns/compute")
}

// BenchmarkCompute is one date at one place.
func BenchmarkCompute(b *testing.B) {
	loc, _ := time.LoadLocation("Europe/London")
	p, _ := prayer.MethodParams(string(prayer.MoonsightingCommittee))
	c := prayer.Coordinates{Latitude: 51.5072, Longitude: -0.1276}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := prayer.Compute(prayer.Date{Year: 2026, Month: 3, Day: 20}, loc, c, p); err != nil {
			b.Fatal(err)
		}
	}
}
