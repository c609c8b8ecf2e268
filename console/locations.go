package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/prayer"
)

// WeekDays is how many dates the locations page's prayer times show.
const WeekDays = 7

// locForm is a location's coordinates and convention override, as text.
type locForm struct {
	Latitude, Longitude, Elevation   string
	Method, Madhab, HighLatitudeRule string
	Errors                           map[string]string
	Other                            []string
}

// locFields are the location form's fields that show their own error.
var locFields = map[string]bool{"latitude": true, "longitude": true, "elevation": true, "method": true, "madhab": true, "high_latitude_rule": true}

func (f *locForm) Err(field string) string { return f.Errors[field] }

func coordText(v *float64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatFloat(*v, 'f', -1, 64)
}

func locFormOf(l api.Location) *locForm {
	return &locForm{Latitude: coordText(l.Latitude), Longitude: coordText(l.Longitude), Elevation: coordText(l.Elevation),
		Method: l.Method, Madhab: l.Madhab, HighLatitudeRule: l.HighLatitudeRule, Errors: map[string]string{}}
}

// input is the form as the body of PUT /v1/locations/{location}: every
// field, so that one left empty is cleared. What is not a number is put
// in Errors.
func (f *locForm) input(zone string) map[string]any {
	in := map[string]any{"zone": zone, "method": f.Method, "madhab": f.Madhab, "high_latitude_rule": f.HighLatitudeRule}
	for _, c := range []struct{ name, v string }{{"latitude", f.Latitude}, {"longitude", f.Longitude}, {"elevation", f.Elevation}} {
		if c.v == "" {
			continue
		}
		v, err := strconv.ParseFloat(c.v, 64)
		if err != nil {
			f.Errors[c.name] = "must be a number of degrees (metres for elevation), such as 21.4225"
			continue
		}
		in[c.name] = v
	}
	return in
}

// prayerCell is one prayer's time on one date.
type prayerCell struct {
	Prayer     string
	Local, UTC string
	// NextDay marks a time after the date's midnight (the night's).
	NextDay bool
}

type prayerWeekDay struct {
	Date  string
	Label string
	Polar bool
	Cells []prayerCell
}

type locationData struct {
	L     api.Location
	F     *locForm
	Saved bool
	// The week shown: its first date, the preview's convention override,
	// the answer's convention, the days and problems.
	Date, Method, Madhab string
	Week                 *api.PrayerTimes
	Days                 []prayerWeekDay
	WeekErrors           map[string]string
	WeekOther            string
}

func (d *locationData) WeekErr(field string) string { return d.WeekErrors[field] }

// location shows one location: its zone, coordinates and convention
// override (an editor can change them), and a chosen week of its prayer
// times.
func (c *Console) location(w http.ResponseWriter, r *http.Request, s *session) error {
	return c.showLocation(w, r, s, http.StatusOK, nil, r.URL.Query().Get("saved") != "")
}

func (c *Console) showLocation(w http.ResponseWriter, r *http.Request, s *session, status int, f *locForm, saved bool) error {
	name := r.PathValue("location")
	d := &locationData{Saved: saved, WeekErrors: map[string]string{}}
	if err := c.call(r, s, http.MethodGet, "/v1/locations/"+url.PathEscape(name), "", nil, &d.L); err != nil {
		return err
	}
	d.F = f
	if d.F == nil {
		d.F = locFormOf(d.L)
	}
	q := r.URL.Query()
	d.Date, d.Method, d.Madhab = strings.TrimSpace(q.Get("date")), q.Get("method"), q.Get("madhab")
	loc, err := localtime.LoadZone(d.L.Zone)
	if err != nil {
		return err
	}
	if d.Date == "" {
		d.Date = localtime.DateOf(c.cfg.Now(), loc).String()
	}
	if d.L.Latitude != nil {
		c.prayerWeek(r, s, d, loc)
	}
	c.render(w, status, "location", page{Title: "Location " + d.L.Location, Nav: "locations", S: s, Data: d})
	return nil
}

// prayerWeek reads the week's times from GET
// /v1/locations/{location}/prayer-times, whose problems are shown beside
// the week's fields.
func (c *Console) prayerWeek(r *http.Request, s *session, d *locationData, loc *time.Location) {
	q := url.Values{"date": {d.Date}, "days": {strconv.Itoa(WeekDays)}}
	if d.Method != "" {
		q.Set("method", d.Method)
	}
	if d.Madhab != "" {
		q.Set("madhab", d.Madhab)
	}
	var pt api.PrayerTimes
	err := c.call(r, s, http.MethodGet, "/v1/locations/"+url.PathEscape(d.L.Location)+"/prayer-times?"+q.Encode(), "", nil, &pt)
	var p *api.Problem
	switch {
	case errors.As(err, &p):
		for _, e := range p.Errors {
			d.WeekErrors[e.Field] = e.Message
		}
		if len(p.Errors) == 0 {
			d.WeekOther = p.Detail
		}
		return
	case err != nil:
		d.WeekOther = err.Error()
		return
	}
	d.Week = &pt
	for _, day := range pt.Days {
		wd := prayerWeekDay{Date: day.Date, Label: day.Date, Polar: day.Polar}
		if dt, err := localtime.ParseDate(day.Date); err == nil {
			wd.Label = dt.Midnight().Format("Mon 02 Jan 2006")
		}
		for _, name := range prayer.Prayers {
			at, ok := day.UTC[string(name)]
			if !ok {
				continue
			}
			wall := at.In(loc)
			wd.Cells = append(wd.Cells, prayerCell{Prayer: string(name), Local: wall.Format("15:04 MST"), UTC: at.UTC().Format("15:04 UTC"),
				NextDay: wall.Format(time.DateOnly) > day.Date})
		}
		d.Days = append(d.Days, wd)
	}
}

// saveLocation puts the location's coordinates and convention override
// through PUT /v1/locations/{location}; its problems are shown beside
// their fields.
func (c *Console) saveLocation(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PathValue("location")
	var l api.Location
	if err := c.call(r, s, http.MethodGet, "/v1/locations/"+url.PathEscape(name), "", nil, &l); err != nil {
		return err
	}
	v := r.PostForm
	f := &locForm{Latitude: strings.TrimSpace(v.Get("latitude")), Longitude: strings.TrimSpace(v.Get("longitude")),
		Elevation: strings.TrimSpace(v.Get("elevation")), Method: v.Get("method"), Madhab: v.Get("madhab"),
		HighLatitudeRule: v.Get("high_latitude_rule"), Errors: map[string]string{}}
	in := f.input(l.Zone)
	if len(f.Errors) == 0 {
		err := c.callJSON(r, s, http.MethodPut, "/v1/locations/"+url.PathEscape(name), in, nil)
		var p *api.Problem
		switch {
		case errors.As(err, &p) && p.Status < 500:
			for _, e := range p.Errors {
				if locFields[e.Field] {
					f.Errors[e.Field] = e.Message
				} else {
					f.Other = append(f.Other, e.Field+": "+e.Message)
				}
			}
			if len(p.Errors) == 0 {
				f.Other = append(f.Other, p.Detail)
			}
		case err != nil:
			return err
		}
	}
	if len(f.Errors) > 0 || len(f.Other) > 0 {
		r.URL.RawQuery = ""
		return c.showLocation(w, r, s, http.StatusUnprocessableEntity, f, false)
	}
	http.Redirect(w, r, fmt.Sprintf("%s/locations/%s?saved=1", Path, url.PathEscape(name)), http.StatusSeeOther)
	return nil
}
