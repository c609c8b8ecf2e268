package console

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/fire"
	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/prayer"
	"github.com/chime-dev/chime/recurrence"
	"github.com/chime-dev/chime/store"
)

// TimelineDays is how far ahead the editor's timeline looks.
const TimelineDays = 7

// TimelineRows bounds the times, locations and prayers the timeline
// computes (each location of a prayer reminder is read from the API);
// the rows after them are checked when the reminder is saved.
const TimelineRows = 100

// capRows is rows up to its TimelineRows-th filled one, and whether any
// were left off.
func capRows[T comparable](rows []T) ([]T, bool) {
	var zero T
	n := 0
	for i, r := range rows {
		if r == zero {
			continue
		}
		if n++; n > TimelineRows {
			return rows[:i], true
		}
	}
	return rows, false
}

// fireLine is one fire on the timeline.
type fireLine struct {
	Local string // on the location's clock, with its zone abbreviation and offset
	UTC   string
	// Note flags a clock change that day, or a local time skipped or
	// repeated by it.
	Note string
	// Prayer is what a prayer reminder's fire is for ("fajr -10m").
	Prayer, PrayerName string
	at                 time.Time
}

// dayMark is one local date of the timeline and whether the reminder's
// recurrence fires on it.
type dayMark struct {
	Date  string
	Label string
	Fires bool
}

type timelineLoc struct {
	Location, Zone string
	// About says what a prayer reminder's times are computed from there.
	About  string
	Days   []dayMark
	Fires  []fireLine
	Errors []string
}

type timelineData struct {
	From, To     string // UTC
	FromAt, ToAt string // RFC 3339, for the page's script and tests
	Locs         []timelineLoc
	Note         string
}

const (
	localLayout = "Mon 02 Jan 15:04:05 MST"
	utcLayout   = "Mon 02 Jan 15:04:05 UTC"
)

func offsetName(t time.Time) string {
	_, off := t.Zone()
	sign := "+"
	if off < 0 {
		sign, off = "-", -off
	}
	return fmt.Sprintf("UTC%s%02d:%02d", sign, off/3600, off%3600/60)
}

func localLine(at time.Time, loc *time.Location) string {
	w := at.In(loc)
	return w.Format(localLayout) + " (" + offsetName(w) + ")"
}

// dayNote describes the clock change on the local date of at, if any.
func dayNote(at time.Time, loc *time.Location) string {
	w := at.In(loc)
	start := localtime.On(w.Year(), w.Month(), w.Day(), 0, loc)
	next := w.AddDate(0, 0, 1)
	end := localtime.On(next.Year(), next.Month(), next.Day(), 0, loc)
	a, b := start.In(loc), end.Add(-time.Second).In(loc)
	if offsetName(a) == offsetName(b) {
		return ""
	}
	began, _ := b.ZoneBounds()
	change := began.UTC()
	// The wall clock just before the change, and the time it reaches then.
	last := change.Add(-time.Second).In(loc)
	reached := time.Date(last.Year(), last.Month(), last.Day(), last.Hour(), last.Minute(), last.Second()+1, 0, time.UTC)
	after := change.In(loc)
	return fmt.Sprintf("clock change at %s: clocks go from %s %s (%s) to %s %s (%s)", change.Format("15:04 UTC"),
		reached.Format("15:04"), last.Format("MST"), offsetName(last), after.Format("15:04"), after.Format("MST"), offsetName(after))
}

// dailyFires are the fires of local time o in loc after from, for days,
// each flagged when the clocks change that day.
func dailyFires(from time.Time, days int, o localtime.Of, loc *time.Location) []fireLine {
	var out []fireLine
	for _, at := range localtime.Between(from, from.AddDate(0, 0, days), o, loc) {
		w := at.In(loc)
		line := fireLine{Local: localLine(at, loc), UTC: at.UTC().Format(utcLayout), Note: dayNote(at, loc), at: at}
		switch wall := localtime.Of(w.Hour()*3600 + w.Minute()*60 + w.Second()); {
		case wall != o:
			line.Note = fmt.Sprintf("%s does not exist that day (clocks go forward): fires at %s", o, w.Format("15:04:05 MST"))
		default:
			// The same wall time once more, later, after the clocks go back?
			_, before := w.Zone()
			_, after := at.Add(6 * time.Hour).In(loc).Zone()
			if before > after {
				again := at.Add(time.Duration(before-after) * time.Second).In(loc)
				if again.Format("15:04:05") == w.Format("15:04:05") {
					line.Note = fmt.Sprintf("%s happens twice that day (clocks go back): fires once, at the first (%s), not at %s",
						o, w.Format("MST"), again.Format("15:04:05 MST"))
				}
			}
		}
		out = append(out, line)
	}
	return out
}

// timelineOf computes the next TimelineDays of fires of the form's
// reminder, per location. Daily and once reminders are computed from the
// form as it stands; timetable and topic reminders fire at stored rows and
// events, read for a saved reminder.
func (c *Console) timelineOf(r *http.Request, s *session, f *form) (out timelineData) {
	now := c.cfg.Now().UTC()
	to := now.AddDate(0, 0, TimelineDays)
	out = timelineData{From: now.Format(utcLayout), To: to.Format(utcLayout), FromAt: now.Format(time.RFC3339), ToAt: to.Format(time.RFC3339)}
	capped := *f
	var cut [3]bool
	capped.Times, cut[0] = capRows(f.Times)
	capped.Locations, cut[1] = capRows(f.Locations)
	capped.Prayers, cut[2] = capRows(f.Prayers)
	f = &capped
	defer func() {
		if cut[0] || cut[1] || cut[2] {
			out.Note = strings.TrimSpace(out.Note + fmt.Sprintf(" The timeline shows the first %d rows of each list; the others are checked when the reminder is saved.", TimelineRows))
		}
	}()
	rule, err := f.rule()
	if err != nil {
		out.Note = "recurrence: " + err.Error()
		return out
	}
	switch f.Kind {
	case store.KindPrayer:
		c.prayerTimeline(r, s, f, rule, now, to, &out)
	case store.KindDaily:
		byLoc := map[string]*timelineLoc{}
		var order []string
		for _, t := range f.Times {
			if t == (timeRow{}) || t.userZones() {
				continue // in users' own zones: no one place to show
			}
			l := byLoc[t.Location]
			if l == nil {
				l = &timelineLoc{Location: t.Location, Zone: t.Zone}
				byLoc[t.Location] = l
				order = append(order, t.Location)
			}
			loc, err := localtime.LoadZone(t.Zone)
			if err != nil {
				l.Errors = append(l.Errors, err.Error())
				continue
			}
			match, err := f.days(rule, loc, now, to, l)
			if err != nil {
				l.Errors = append(l.Errors, "recurrence: "+err.Error())
				continue
			}
			o, err := localtime.Parse(t.LocalTime)
			if err != nil {
				l.Errors = append(l.Errors, err.Error())
				continue
			}
			for _, fl := range dailyFires(now, TimelineDays, o, loc) {
				if match(localtime.DateOf(fl.at, loc)) {
					l.Fires = append(l.Fires, fl)
				}
			}
		}
		for _, name := range order {
			l := byLoc[name]
			sort.SliceStable(l.Fires, func(i, j int) bool { return l.Fires[i].at.Before(l.Fires[j].at) })
			out.Locs = append(out.Locs, *l)
		}
		if len(order) == 0 {
			out.Note = "Add a time (location, zone, local time) to see when it fires."
		}
	case store.KindOnce:
		at, err := time.Parse(time.RFC3339, f.At)
		if localAt(f.At) {
			out.Note = "A wall-clock time without offset fires at that time in each user's zone and each location's."
			return out
		}
		if err != nil {
			out.Note = "Give the instant (with its offset) to see when it fires."
			return out
		}
		offs := splitList(f.Offsets)
		if len(offs) == 0 {
			offs = []string{"0s"}
		}
		places := []placeRow{}
		for _, l := range f.Locations {
			if l != (placeRow{}) {
				places = append(places, l)
			}
		}
		if len(places) == 0 {
			places = append(places, placeRow{api.GlobalPlace.Location, api.GlobalPlace.Zone})
		}
		for _, p := range places {
			l := timelineLoc{Location: p.Location, Zone: p.Zone}
			loc, err := localtime.LoadZone(p.Zone)
			if err != nil {
				l.Errors = append(l.Errors, err.Error())
				out.Locs = append(out.Locs, l)
				continue
			}
			for _, o := range offs {
				d, err := time.ParseDuration(o)
				if err != nil {
					l.Errors = append(l.Errors, fmt.Sprintf("offset %q is not a duration", o))
					continue
				}
				fire := at.Add(-d)
				line := fireLine{Local: localLine(fire, loc), UTC: fire.UTC().Format(utcLayout), Note: dayNote(fire, loc)}
				if !fire.After(now) || fire.After(to) {
					line.Note = "outside the next 7 days"
				}
				l.Fires = append(l.Fires, line)
			}
			out.Locs = append(out.Locs, l)
		}
	default:
		if f.New || f.Key == "" {
			out.Note = fmt.Sprintf("A %s reminder fires at the times stored for it (timetable rows, events): save it to see them.", f.Kind)
			return out
		}
		var up struct{ Upcoming []api.Upcoming }
		if err := c.call(r, s, http.MethodGet, "/v1/reminders/"+url.PathEscape(f.Key)+"/upcoming?hours="+fmt.Sprint(24*TimelineDays), "", nil, &up); err != nil {
			out.Note = "The stored fires cannot be read: " + err.Error()
			return out
		}
		byLoc := map[string]int{}
		for _, u := range up.Upcoming {
			i, ok := byLoc[u.Location]
			if !ok {
				i = len(out.Locs)
				byLoc[u.Location] = i
				out.Locs = append(out.Locs, timelineLoc{Location: u.Location, Zone: u.Zone})
			}
			loc, err := localtime.LoadZone(u.Zone)
			if err != nil {
				continue
			}
			out.Locs[i].Fires = append(out.Locs[i].Fires, fireLine{Local: localLine(u.FireAt, loc), UTC: u.FireAt.UTC().Format(utcLayout), Note: dayNote(u.FireAt, loc)})
		}
		if len(up.Upcoming) == 0 {
			out.Note = "No fires stored in the next 7 days."
		}
	}
	return out
}

// timeline renders the timeline of the posted form, for the editor's script.
func (c *Console) timeline(w http.ResponseWriter, r *http.Request, s *session) error {
	f := parseForm(r.PostForm)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	return c.pages.ExecuteTemplate(w, "timeline", c.timelineOf(r, s, f))
}

// rule is the form's recurrence, nil for every day. The API checks it
// again on save (and reports its problem beside the field); here it
// only decides the timeline's days.
func (f *form) rule() (*recurrence.Rule, error) {
	if !f.Shows("recurrence") || f.Recurrence == "" {
		return nil, nil
	}
	rule, err := recurrence.Parse(f.Recurrence)
	if err != nil {
		return nil, err
	}
	return &rule, nil
}

// days returns which local dates in loc the rule fires on, from a day
// before from to a day after to, as package fire decides them: counted
// from the local date of starts_at when the rule depends on its start.
// It lists the dates of [from, to] on l, marked, when l has none yet and
// there is a rule.
func (f *form) days(rule *recurrence.Rule, loc *time.Location, from, to time.Time, l *timelineLoc) (func(localtime.Date) bool, error) {
	if rule == nil {
		return func(localtime.Date) bool { return true }, nil
	}
	var anchor localtime.Date
	if rule.NeedsAnchor() {
		start, err := time.Parse(time.RFC3339, f.StartsAt)
		if err != nil {
			return nil, errors.New("counts from its start (COUNT, INTERVAL above 1, or a day taken from the start): set starts_at, or name the days")
		}
		anchor = fire.RecurrenceAnchor(*rule, &start, loc)
	}
	first, last := localtime.DateOf(from, loc).AddDays(-1), localtime.DateOf(to, loc).AddDays(1)
	if err := rule.Check(cmp.Or(anchor, first)); err != nil {
		return nil, err
	}
	ds, err := rule.Dates(anchor, first, last)
	if err != nil {
		return nil, err
	}
	set := make(map[localtime.Date]bool, len(ds))
	for _, d := range ds {
		set[d] = true
	}
	if l != nil && len(l.Days) == 0 {
		for d := localtime.DateOf(from, loc); !localtime.DateOf(to, loc).Before(d); d = d.AddDays(1) {
			l.Days = append(l.Days, dayMark{Date: d.String(), Label: d.Midnight().Format("Mon 02 Jan"), Fires: set[d]})
		}
	}
	return func(d localtime.Date) bool { return set[d] }, nil
}

// prayerTimeline puts the fires of the form's prayer reminder at each of
// its locations: each prayer's time, computed by package prayer from the
// location's coordinates and its convention override, else the form's,
// plus the prayer's offset, on the dates of the recurrence. A location's
// coordinates are read from the API (GET /v1/locations/{location}).
func (c *Console) prayerTimeline(r *http.Request, s *session, f *form, rule *recurrence.Rule, now, to time.Time, out *timelineData) {
	var prayers []store.PrayerOffset
	var bad []string
	for i, p := range f.Prayers {
		if p == (prayerRow{}) {
			continue
		}
		name, err := prayer.ParsePrayer(p.Prayer)
		if err != nil {
			bad = append(bad, fmt.Sprintf("prayer %d: %s", i+1, err))
			continue
		}
		off := time.Duration(0)
		if p.Offset != "" {
			if off, err = time.ParseDuration(p.Offset); err != nil || off < -store.MaxPrayerOffset || off > store.MaxPrayerOffset {
				bad = append(bad, fmt.Sprintf("prayer %d: offset %q is not a duration between -6h and 6h", i+1, p.Offset))
				continue
			}
		}
		prayers = append(prayers, store.PrayerOffset{Prayer: string(name), Offset: off})
	}
	if len(prayers) == 0 {
		out.Note = "Add a prayer (and its offset, such as -10m) and a location with coordinates to see when it fires."
	}
	known := map[string]api.Location{} // by name; a name not found is the zero Location
	for _, p := range f.Locations {
		if p == (placeRow{}) {
			continue
		}
		l := timelineLoc{Location: p.Location, Zone: p.Zone, Errors: bad}
		out.Locs = append(out.Locs, l)
		tl := &out.Locs[len(out.Locs)-1]
		at, ok := known[p.Location]
		if !ok {
			if err := c.call(r, s, http.MethodGet, "/v1/locations/"+url.PathEscape(p.Location), "", nil, &at); err != nil {
				at = api.Location{}
			}
			known[p.Location] = at
		}
		if at.Location == "" {
			tl.Errors = append(tl.Errors, fmt.Sprintf("no location %q yet: give it coordinates on the locations page", p.Location))
			continue
		}
		if at.Latitude == nil || at.Longitude == nil {
			tl.Errors = append(tl.Errors, fmt.Sprintf("location %q has no coordinates: set them on the locations page", p.Location))
			continue
		}
		tl.Zone = at.Zone
		loc, err := localtime.LoadZone(at.Zone)
		if err != nil {
			tl.Errors = append(tl.Errors, err.Error())
			continue
		}
		coords := prayer.Coordinates{Latitude: *at.Latitude, Longitude: *at.Longitude}
		if at.Elevation != nil {
			coords.Elevation = *at.Elevation
		}
		pr := fire.PrayerReminder{Prayers: prayers, Method: f.Method, Madhab: f.Madhab, HighLatitudeRule: f.HighLatitudeRule}
		pl := fire.PrayerPlace{Coordinates: coords, Zone: loc, Method: at.Method, Madhab: at.Madhab, HighLatitudeRule: at.HighLatitudeRule}
		params, err := conventionOf(pr, pl)
		if err != nil {
			tl.Errors = append(tl.Errors, err.Error())
			continue
		}
		hlr := cmp.Or(string(params.HighLatitudeRule), string(prayer.RecommendedRule(coords.Latitude))+" (recommended for the latitude)")
		tl.About = fmt.Sprintf("At %g, %g: %s, madhab %s, high latitudes %s.", coords.Latitude, coords.Longitude, params.Method, params.Madhab, hlr)
		if at.Method != "" || at.Madhab != "" || at.HighLatitudeRule != "" {
			tl.About += " The location's own convention overrides the reminder's."
		}
		if pr.Days, err = f.days(rule, loc, now, to, tl); err != nil {
			tl.Errors = append(tl.Errors, "recurrence: "+err.Error())
			continue
		}
		tl.Fires = prayerFires(now, to, pr, pl)
	}
}

// conventionOf is the parameters of a prayer reminder's times at a place,
// as package fire decides them; the console refuses custom angles, which
// a reminder does not store.
func conventionOf(pr fire.PrayerReminder, pl fire.PrayerPlace) (prayer.Params, error) {
	p, err := fire.PrayerConvention(pr, pl)
	if err == nil && p.Method == prayer.Custom {
		err = errors.New("method: custom angles are not stored on a reminder; name a convention")
	}
	return p, err
}

// prayerFires are the fires in (from, to] of a prayer reminder at a place,
// by package fire's rules, described with each prayer's own time.
func prayerFires(from, to time.Time, pr fire.PrayerReminder, pl fire.PrayerPlace) []fireLine {
	// A date whose times cannot be computed shows none; the API checks
	// a location's coordinates, so the timeline has no error to add.
	fires, _ := fire.PrayerFires(pr, pl, from, to)
	var out []fireLine
	for _, pf := range fires {
		loc := pl.Zone
		what := string(pf.Prayer)
		if !pf.Time.IsZero() {
			what = fmt.Sprintf("%s at %s", pf.Prayer, pf.Time.In(loc).Format("15:04 MST"))
			if pf.Offset != 0 {
				what = fmt.Sprintf("%s %s (%s)", pf.Prayer, signed(pf.Offset), what)
			}
		}
		out = append(out, fireLine{Local: localLine(pf.At, loc), UTC: pf.At.Format(utcLayout), Note: dayNote(pf.At, loc),
			Prayer: what, PrayerName: string(pf.Prayer), at: pf.At})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

// signed is an offset with its sign: "-10m0s", "+5m0s".
func signed(d time.Duration) string {
	if d > 0 {
		return "+" + d.String()
	}
	return d.String()
}
