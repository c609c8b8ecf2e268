package api

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/prayer"
	"github.com/chime-dev/chime/store"
	"github.com/chime-dev/chime/userzone"
)

// MaxPrayerDays bounds the days one prayer-times preview answers.
const MaxPrayerDays = 31

// Location is the JSON form of a location.
type Location struct {
	Location         string   `json:"location"`
	Zone             string   `json:"zone"`
	Latitude         *float64 `json:"latitude,omitempty"`
	Longitude        *float64 `json:"longitude,omitempty"`
	Elevation        *float64 `json:"elevation,omitempty"`
	Method           string   `json:"method,omitempty"`
	Madhab           string   `json:"madhab,omitempty"`
	HighLatitudeRule string   `json:"high_latitude_rule,omitempty"`
	// Managed marks a location Chime keeps for the users registered in
	// its zone (package userzone); no app can create or change one.
	Managed bool `json:"managed,omitempty"`
}

func locationOf(l store.Location) Location {
	_, managed := userzone.Zone(l.Name)
	return Location{Location: l.Name, Zone: l.Zone, Latitude: l.Latitude, Longitude: l.Longitude, Elevation: l.Elevation,
		Method: l.Method, Madhab: l.Madhab, HighLatitudeRule: l.HighLatitudeRule, Managed: managed}
}

// fieldProblem is a 422 naming one field.
func fieldProblem(field, msg string) *Problem {
	return problem(http.StatusUnprocessableEntity, field+": "+msg, FieldError{Field: field, Message: msg})
}

// prayerProblem is the 422 for a *prayer.Error.
func prayerProblem(err error) *Problem {
	var pe *prayer.Error
	if errors.As(err, &pe) {
		return fieldProblem(pe.Field, pe.Reason)
	}
	return nil
}

// putLocation creates or updates a location: its zone (required to create;
// a location keeps its zone), coordinates and prayer convention override.
func (a *API) putLocation(w http.ResponseWriter, r *http.Request, app int64) error {
	name := r.PathValue("location")
	if strings.HasPrefix(name, userzone.Prefix) {
		return fieldProblem("location", "names of the form "+userzone.Prefix+"<zone> are the locations Chime keeps for users registered with a zone; they cannot be created or changed")
	}
	if !keyPattern.MatchString(name) {
		return fieldProblem("location", "must be 1-100 letters, digits, '_', '.' or '-'")
	}
	var in Location
	if p := decode(w, r, 4096, &in); p != nil {
		return p
	}
	if in.Location != "" && in.Location != name {
		return fieldProblem("location", "differs from the path")
	}
	if in.Zone != "" {
		if _, err := localtime.LoadZone(in.Zone); err != nil {
			return fieldProblem("zone", err.Error())
		}
	}
	if (in.Latitude == nil) != (in.Longitude == nil) {
		field := "latitude"
		if in.Longitude == nil {
			field = "longitude"
		}
		return fieldProblem(field, "latitude and longitude are given together")
	}
	if in.Elevation != nil && in.Latitude == nil {
		return fieldProblem("elevation", "needs latitude and longitude")
	}
	if in.Latitude != nil {
		c := prayer.Coordinates{Latitude: *in.Latitude, Longitude: *in.Longitude}
		if in.Elevation != nil {
			c.Elevation = *in.Elevation
		}
		if err := c.Validate(); err != nil {
			return prayerProblem(err)
		}
	}
	if in.Method != "" {
		if _, err := prayer.MethodParams(in.Method); err != nil {
			return prayerProblem(err)
		}
	}
	if _, err := prayer.ParseMadhab(in.Madhab); err != nil {
		return prayerProblem(err)
	}
	if _, err := prayer.ParseHighLatitudeRule(in.HighLatitudeRule); err != nil {
		return prayerProblem(err)
	}
	l, created, err := store.PutLocation(r.Context(), a.db, app, name, store.LocationFields{
		Zone: in.Zone, Latitude: in.Latitude, Longitude: in.Longitude, Elevation: in.Elevation,
		Method: in.Method, Madhab: in.Madhab, HighLatitudeRule: in.HighLatitudeRule,
	})
	var ze *store.ZoneError
	switch {
	case errors.Is(err, store.ErrZoneRequired):
		return fieldProblem("zone", "is required for a new location")
	case errors.As(err, &ze):
		return problem(http.StatusConflict, ze.Error()+"; a location keeps its zone")
	case err != nil:
		return err
	}
	// New coordinates or a new convention move the location's prayer
	// times: the leader re-plans now, not at its next interval.
	a.announce(r.Context(), "location:"+l.Name)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, locationOf(l))
	return nil
}

func (a *API) getLocation(w http.ResponseWriter, r *http.Request, app int64) error {
	l, err := store.FindLocation(r.Context(), a.db, app, r.PathValue("location"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, locationOf(l))
	return nil
}

func (a *API) listLocations(w http.ResponseWriter, r *http.Request, app int64) error {
	limit, p := intParam(r, "limit", 100, 1, 1000)
	if p != nil {
		return p
	}
	locs, err := store.Locations(r.Context(), a.db, app, r.URL.Query().Get("after"), limit)
	if err != nil {
		return err
	}
	out := struct {
		Locations []Location `json:"locations"`
		Next      string     `json:"next,omitempty"`
	}{Locations: make([]Location, len(locs))}
	for i, l := range locs {
		out.Locations[i] = locationOf(l)
	}
	if len(locs) == limit {
		out.Next = locs[len(locs)-1].Name
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// PrayerDay is one date's times in a prayer-times preview: each as a UTC
// instant and as the location's wall-clock time (RFC 3339 with its offset).
type PrayerDay struct {
	Date     string               `json:"date"`
	Polar    bool                 `json:"polar,omitempty"`
	Latitude float64              `json:"latitude"` // the latitude computed for: the location's, or the polar rule's
	UTC      map[string]time.Time `json:"utc"`
	Local    map[string]string    `json:"local"`
}

// customAngles reads the angles and interval of method=custom from the
// query (fajr_angle, isha_angle, isha_interval, maghrib_angle); they are
// refused with any other method, whose angles are its convention's.
func customAngles(q url.Values, p *prayer.Params) *Problem {
	for _, f := range []struct {
		name string
		set  func(float64)
	}{
		{"fajr_angle", func(v float64) { p.FajrAngle = v }},
		{"isha_angle", func(v float64) { p.IshaAngle = v }},
		{"isha_interval", func(v float64) { p.IshaInterval = int(v) }},
		{"maghrib_angle", func(v float64) { p.MaghribAngle = v }},
	} {
		s := q.Get(f.name)
		if s == "" {
			continue
		}
		if p.Method != prayer.Custom {
			return fieldProblem(f.name, "is given with method=custom only; other methods use their convention's angles")
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(v) || math.Abs(v) > 1e6 || (f.name == "isha_interval" && v != math.Trunc(v)) {
			return fieldProblem(f.name, "must be a number (whole minutes for isha_interval)")
		}
		f.set(v)
	}
	if err := p.Validate(); err != nil {
		return prayerProblem(err)
	}
	return nil
}

// PrayerTimes answers GET /v1/locations/{location}/prayer-times: the
// convention the times were computed by and each date's times.
type PrayerTimes struct {
	Location         string      `json:"location"`
	Zone             string      `json:"zone"`
	Method           string      `json:"method"`
	Madhab           string      `json:"madhab"`
	HighLatitudeRule string      `json:"high_latitude_rule"`
	Days             []PrayerDay `json:"days"`
}

// prayerTimes previews the computed times of a location for days dates
// from date: the convention is the query's, else the location's override,
// else prayer.DefaultMethod (madhab shafi, the rule recommended for the
// latitude).
func (a *API) prayerTimes(w http.ResponseWriter, r *http.Request, app int64) error {
	q := r.URL.Query()
	days, p := intParam(r, "days", 1, 1, MaxPrayerDays)
	if p != nil {
		return p
	}
	l, err := store.FindLocation(r.Context(), a.db, app, r.PathValue("location"))
	if err != nil {
		return err
	}
	if l.Latitude == nil || l.Longitude == nil {
		return problem(http.StatusUnprocessableEntity, fmt.Sprintf("location %q has no coordinates; PUT /v1/locations/%s with latitude and longitude", l.Name, l.Name),
			FieldError{Field: "latitude", Message: "is not set for this location"})
	}
	loc, err := localtime.LoadZone(l.Zone)
	if err != nil {
		return err
	}
	date := prayer.DateOf(a.cfg.Now().In(loc))
	if s := q.Get("date"); s != "" {
		if date, err = prayer.ParseDate(s); err != nil {
			return prayerProblem(err)
		}
	}
	params, err := prayer.MethodParams(cmp.Or(q.Get("method"), l.Method))
	if err != nil {
		return prayerProblem(err)
	}
	if p := customAngles(q, &params); p != nil {
		return p
	}
	if params.Madhab, err = prayer.ParseMadhab(cmp.Or(q.Get("madhab"), l.Madhab)); err != nil {
		return prayerProblem(err)
	}
	if params.HighLatitudeRule, err = prayer.ParseHighLatitudeRule(cmp.Or(q.Get("high_latitude_rule"), l.HighLatitudeRule)); err != nil {
		return prayerProblem(err)
	}
	c := prayer.Coordinates{Latitude: *l.Latitude, Longitude: *l.Longitude}
	if l.Elevation != nil {
		c.Elevation = *l.Elevation
	}
	out := PrayerTimes{Location: l.Name, Zone: l.Zone, Method: string(params.Method), Madhab: string(params.Madhab),
		HighLatitudeRule: string(cmp.Or(params.HighLatitudeRule, prayer.RecommendedRule(c.Latitude)))}
	for i := range days {
		d := date.AddDays(i)
		t, err := prayer.Compute(d, loc, c, params)
		if errors.Is(err, prayer.ErrSkippedDate) {
			continue // the zone has no such date
		}
		if err != nil {
			if p := prayerProblem(err); p != nil {
				return p
			}
			return err
		}
		day := PrayerDay{Date: d.String(), Polar: t.Polar, Latitude: t.Latitude,
			UTC: make(map[string]time.Time, len(prayer.Prayers)), Local: make(map[string]string, len(prayer.Prayers))}
		for _, name := range prayer.Prayers {
			at := t.Of(name)
			day.UTC[string(name)] = at.UTC()
			day.Local[string(name)] = at.In(loc).Format(time.RFC3339)
		}
		out.Days = append(out.Days, day)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
