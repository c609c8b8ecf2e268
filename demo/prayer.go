package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"

	"github.com/chime-dev/chime/api"
)

// PrayerCities are the places of the prayer demo, with coordinates and, for
// Mecca and Karachi, their regional conventions.
var PrayerCities = []struct {
	Name, Zone     string
	Lat, Lon       float64
	Method, Madhab string
}{
	{"mecca", "Asia/Riyadh", 21.4225, 39.8262, "umm_al_qura", ""},
	{"jakarta", "Asia/Jakarta", -6.2088, 106.8456, "singapore", ""},
	{"new-york", "America/New_York", 40.7128, -74.0060, "north_america", ""},
	{"london", "Europe/London", 51.5074, -0.1278, "moonsighting_committee", ""},
	{"karachi", "Asia/Karachi", 24.8607, 67.0011, "karachi", "hanafi"},
}

// prayerDemo gives the demo's locations coordinates, defines a prayer
// reminder (fajr ten minutes early, maghrib and isha on time) and Jumu'ah
// (dhuhr thirty minutes early on Fridays) over them, and prints what the
// planner will fire: the next day's prayers and the next Friday's.
func prayerDemo(ctx context.Context, c *client, sum *Summary, stderr io.Writer) error {
	var places []api.Place
	for _, city := range PrayerCities {
		err := c.Do(ctx, http.MethodPut, "/v1/locations/"+city.Name, map[string]any{
			"zone": city.Zone, "latitude": city.Lat, "longitude": city.Lon, "method": city.Method, "madhab": city.Madhab,
		}, nil)
		if err != nil {
			return fmt.Errorf("prayer demo: location %s: %w", city.Name, err)
		}
		places = append(places, api.Place{Location: city.Name, Zone: city.Zone})
	}
	reminders := []struct {
		key   string
		hours int
		body  map[string]any
	}{
		{"salah", 24, map[string]any{"kind": "prayer", "title": "{{.Location}}: prayer at {{.LocalTime}}", "locations": places,
			"prayers": []map[string]string{{"prayer": "fajr", "offset": "-10m"}, {"prayer": "maghrib"}, {"prayer": "isha"}}}},
		{"jumuah", 7 * 24, map[string]any{"kind": "prayer", "title": "Jumu'ah in 30 minutes", "locations": places,
			"recurrence": "FREQ=WEEKLY;BYDAY=FR", "prayers": []map[string]string{{"prayer": "dhuhr", "offset": "-30m"}}}},
	}
	tw := tabwriter.NewWriter(stderr, 0, 0, 2, ' ', 0)
	for _, r := range reminders {
		if err := c.Do(ctx, http.MethodPut, "/v1/reminders/"+r.key, r.body, nil); err != nil {
			return fmt.Errorf("prayer demo: reminder %s: %w", r.key, err)
		}
		var up struct{ Upcoming []api.Upcoming }
		if err := c.Do(ctx, http.MethodGet, fmt.Sprintf("/v1/reminders/%s/upcoming?hours=%d", r.key, r.hours), nil, &up); err != nil {
			return fmt.Errorf("prayer demo: upcoming %s: %w", r.key, err)
		}
		fmt.Fprintf(tw, "\n%s, next %dh\tprayer\tprayer time\tfires (local)\tfires (UTC)\n", r.key, r.hours)
		for _, u := range up.Upcoming {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Location, u.Prayer, u.LocalTime, u.Local, u.FireAt.Format("2006-01-02 15:04Z"))
		}
		if r.key == "salah" {
			sum.PrayerUpcoming = len(up.Upcoming)
		} else {
			sum.JumuahUpcoming = len(up.Upcoming)
		}
	}
	sum.PrayerCities = len(PrayerCities)
	return tw.Flush()
}
