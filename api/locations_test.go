package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/prayer"
)

// TestLocationCoordinates puts a location with coordinates and an override
// through the real API and MariaDB, reads it back, updates it, and checks:
// zone required on create and kept after (409), each bad field a 422
// naming it with nothing stored, and another app's key neither sees it
// nor can preview it.
func TestLocationCoordinates(t *testing.T) {
	b := setup(t)
	var got struct {
		Location  string   `json:"location"`
		Zone      string   `json:"zone"`
		Latitude  *float64 `json:"latitude"`
		Longitude *float64 `json:"longitude"`
		Method    string   `json:"method"`
	}
	requireProblem(t, b.as(http.MethodPut, "/v1/locations/makkah", map[string]any{"latitude": 21.4225, "longitude": 39.8262}), http.StatusUnprocessableEntity, "zone")
	requireJSON(t, b.as(http.MethodPut, "/v1/locations/makkah", map[string]any{"zone": "Asia/Riyadh", "latitude": 21.4225, "longitude": 39.8262, "method": "umm_al_qura"}), http.StatusCreated, &got)
	require.Equal(t, "Asia/Riyadh", got.Zone)
	require.InDelta(t, 21.4225, *got.Latitude, 1e-9)

	for _, bad := range []struct {
		field string
		body  map[string]any
	}{
		{"zone", map[string]any{"zone": "Mars/Olympus"}},
		{"latitude", map[string]any{"latitude": 91, "longitude": 0}},
		{"longitude", map[string]any{"latitude": 0, "longitude": -180.5}},
		{"longitude", map[string]any{"latitude": 10}},
		{"elevation", map[string]any{"latitude": 0, "longitude": 0, "elevation": 9001}},
		{"method", map[string]any{"latitude": 0, "longitude": 0, "method": "isna"}},
		{"madhab", map[string]any{"madhab": "maliki"}},
		{"high_latitude_rule", map[string]any{"high_latitude_rule": "angle"}},
	} {
		p := requireProblem(t, b.as(http.MethodPut, "/v1/locations/makkah", bad.body), http.StatusUnprocessableEntity, bad.field)
		require.Equal(t, bad.field, p.Errors[0].Field)
	}
	requireProblem(t, b.as(http.MethodPut, "/v1/locations/makkah", map[string]any{"zone": "Europe/Paris"}), http.StatusConflict, "Asia/Riyadh")
	requireJSON(t, b.as(http.MethodGet, "/v1/locations/makkah", nil), http.StatusOK, &got)
	require.Equal(t, "umm_al_qura", got.Method, "a refused PUT changed the location")

	got.Method = ""
	requireJSON(t, b.as(http.MethodPut, "/v1/locations/makkah", map[string]any{"latitude": 21.5, "longitude": 39.8}), http.StatusOK, &got)
	require.InDelta(t, 21.5, *got.Latitude, 1e-9)
	require.Empty(t, got.Method, "a PUT without method keeps the old override")

	var list struct {
		Locations []struct{ Location string } `json:"locations"`
	}
	requireJSON(t, b.as(http.MethodGet, "/v1/locations", nil), http.StatusOK, &list)
	require.Len(t, list.Locations, 1)

	// Another app's key sees none of it.
	requireProblem(t, b.req(http.MethodGet, "/v1/locations/makkah", b.keyB, nil), http.StatusNotFound)
	requireProblem(t, b.req(http.MethodGet, "/v1/locations/makkah/prayer-times", b.keyB, nil), http.StatusNotFound)
	requireJSON(t, b.req(http.MethodGet, "/v1/locations", b.keyB, nil), http.StatusOK, &list)
	require.Empty(t, list.Locations)
}

// TestPrayerTimesPreview previews Makkah's times for 2016-06-04..06 and
// checks the shape (each time as a UTC instant and the same instant in
// local time), the convention chosen (query over location override over
// the default), a published time (Umm al-Qura fajr 04:11 on 2016-06-04,
// testdata of package prayer), and the limits: days 1..31, a bad date,
// method or madhab get 400/422 naming the parameter, and a location
// without coordinates gets 422.
func TestPrayerTimesPreview(t *testing.T) {
	b := setup(t)
	requireJSON(t, b.as(http.MethodPut, "/v1/locations/makkah", map[string]any{"zone": "Asia/Riyadh", "latitude": 21.427009, "longitude": 39.828685, "method": "umm_al_qura"}), http.StatusCreated, nil)
	type day struct {
		Date  string               `json:"date"`
		UTC   map[string]time.Time `json:"utc"`
		Local map[string]string    `json:"local"`
	}
	var out struct {
		Method string `json:"method"`
		Madhab string `json:"madhab"`
		Days   []day  `json:"days"`
	}
	requireJSON(t, b.as(http.MethodGet, "/v1/locations/makkah/prayer-times?date=2016-06-04&days=3", nil), http.StatusOK, &out)
	require.Equal(t, "umm_al_qura", out.Method)
	require.Equal(t, "shafi", out.Madhab)
	require.Len(t, out.Days, 3)
	require.Equal(t, "2016-06-06", out.Days[2].Date)
	require.Equal(t, "2016-06-04T04:11:00+03:00", out.Days[0].Local["fajr"])
	for _, d := range out.Days {
		require.Len(t, d.UTC, 8)
		for name, at := range d.UTC {
			local, err := time.Parse(time.RFC3339, d.Local[name])
			require.NoError(t, err)
			require.True(t, local.Equal(at), "%s %s: local %s is not utc %s", d.Date, name, local, at)
		}
	}
	requireJSON(t, b.as(http.MethodGet, "/v1/locations/makkah/prayer-times?date=2016-06-04&method=egyptian&madhab=hanafi", nil), http.StatusOK, &out)
	require.Equal(t, "egyptian", out.Method)
	require.Equal(t, "hanafi", out.Madhab)
	require.Len(t, out.Days, 1)
	requireJSON(t, b.as(http.MethodGet, "/v1/locations/makkah/prayer-times?days=31", nil), http.StatusOK, &out)
	require.Len(t, out.Days, 31)

	requireProblem(t, b.as(http.MethodGet, "/v1/locations/makkah/prayer-times?days=32", nil), http.StatusBadRequest, "days")
	requireProblem(t, b.as(http.MethodGet, "/v1/locations/makkah/prayer-times?days=0", nil), http.StatusBadRequest, "days")
	for _, q := range []string{"date=2016-13-01", "method=isna", "madhab=maliki", "high_latitude_rule=angle"} {
		requireProblem(t, b.as(http.MethodGet, "/v1/locations/makkah/prayer-times?"+q, nil), http.StatusUnprocessableEntity)
	}
	requireJSON(t, b.as(http.MethodPut, "/v1/locations/paris", map[string]any{"zone": "Europe/Paris"}), http.StatusCreated, nil)
	requireProblem(t, b.as(http.MethodGet, "/v1/locations/paris/prayer-times", nil), http.StatusUnprocessableEntity, "coordinates")
	requireProblem(t, b.as(http.MethodGet, "/v1/locations/nowhere/prayer-times", nil), http.StatusNotFound)
}

// TestLocationChangeIsAnnounced puts a location through the real API and
// Redis while listening on the changes channel the scheduling leader
// listens on. Checks: the create and an update of its coordinates are each
// announced (so prayer times re-plan at once), and a refused update is not.
func TestLocationChangeIsAnnounced(t *testing.T) {
	b := setup(t)
	sub := b.env.Redis.Subscribe(context.Background(), b.env.Prefix+"changes")
	defer sub.Close()
	_, err := sub.Receive(context.Background()) // the subscription is in place
	require.NoError(t, err)
	next := func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m, err := sub.ReceiveMessage(ctx)
		require.NoError(t, err)
		return m.Payload
	}
	require.Equal(t, http.StatusCreated, b.as(http.MethodPut, "/v1/locations/makkah", map[string]any{"zone": "Asia/Riyadh"}).Status)
	require.Equal(t, "location:makkah", next())
	requireProblem(t, b.as(http.MethodPut, "/v1/locations/makkah", map[string]any{"latitude": 91, "longitude": 0}), http.StatusUnprocessableEntity, "latitude")
	require.Equal(t, http.StatusOK, b.as(http.MethodPut, "/v1/locations/makkah", map[string]any{"latitude": 21.4225, "longitude": 39.8262}).Status)
	require.Equal(t, "location:makkah", next(), "the refused update announced nothing; the next message is the update's")
}

// TestPrayerTimesCustomAngles previews a location's times with method=custom
// and its own angles through the real API and MariaDB. Checks: the answer
// is package prayer's for those angles (and differs from the defaults),
// an isha interval replaces the isha angle, and each bad angle is a 422
// naming it: out of range, not a number, or given with another method.
func TestPrayerTimesCustomAngles(t *testing.T) {
	b := setup(t)
	require.Equal(t, http.StatusCreated, b.as(http.MethodPut, "/v1/locations/cairo", map[string]any{"zone": "Africa/Cairo", "latitude": 30.0444, "longitude": 31.2357}).Status)
	var out struct {
		Method string `json:"method"`
		Days   []struct {
			UTC map[string]time.Time `json:"utc"`
		} `json:"days"`
	}
	cairo, _ := time.LoadLocation("Africa/Cairo")
	compute := func(p prayer.Params) prayer.Times {
		t.Helper()
		times, err := prayer.Compute(prayer.Date{Year: 2026, Month: 6, Day: 1}, cairo, prayer.Coordinates{Latitude: 30.0444, Longitude: 31.2357}, p)
		require.NoError(t, err)
		return times
	}
	custom, err := prayer.MethodParams("custom")
	require.NoError(t, err)
	custom.FajrAngle, custom.IshaAngle = 19.5, 17.5

	requireJSON(t, b.as(http.MethodGet, "/v1/locations/cairo/prayer-times?date=2026-06-01&method=custom&fajr_angle=19.5&isha_angle=17.5", nil), http.StatusOK, &out)
	require.Equal(t, "custom", out.Method)
	want := compute(custom)
	require.True(t, want.Fajr.Equal(out.Days[0].UTC["fajr"]), "fajr %s, want %s", out.Days[0].UTC["fajr"], want.Fajr)
	require.True(t, want.Isha.Equal(out.Days[0].UTC["isha"]))
	def, err := prayer.MethodParams("custom")
	require.NoError(t, err)
	require.False(t, compute(def).Fajr.Equal(want.Fajr), "the angles changed the answer")

	custom.IshaInterval = 90
	requireJSON(t, b.as(http.MethodGet, "/v1/locations/cairo/prayer-times?date=2026-06-01&method=custom&fajr_angle=19.5&isha_angle=17.5&isha_interval=90", nil), http.StatusOK, &out)
	require.True(t, compute(custom).Isha.Equal(out.Days[0].UTC["isha"]))
	require.Equal(t, 90*time.Minute, out.Days[0].UTC["isha"].Sub(out.Days[0].UTC["maghrib"]))

	for _, bad := range []struct{ query, field string }{
		{"method=custom&fajr_angle=45", "fajr_angle"},
		{"method=custom&isha_angle=abc", "isha_angle"},
		{"method=custom&isha_interval=1.5", "isha_interval"},
		{"method=custom&isha_interval=1e300", "isha_interval"},
		{"method=custom&maghrib_angle=NaN", "maghrib_angle"},
		{"method=egyptian&fajr_angle=18", "fajr_angle"},
	} {
		requireProblem(t, b.as(http.MethodGet, "/v1/locations/cairo/prayer-times?date=2026-06-01&"+bad.query, nil), http.StatusUnprocessableEntity, bad.field)
	}
}
