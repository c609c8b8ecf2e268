package console

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"time"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/store"
)

// TimelineDays is how far ahead the editor's timeline looks.
const TimelineDays = 7

// fireLine is one fire on the timeline.
type fireLine struct {
	Local string // on the location's clock, with its zone abbreviation and offset
	UTC   string
	// Note flags a clock change that day, or a local time skipped or
	// repeated by it.
	Note string
	at   time.Time
}

type timelineLoc struct {
	Location, Zone string
	Fires          []fireLine
	Errors         []string
}

type timelineData struct {
	From, To string // UTC
	Locs     []timelineLoc
	Note     string
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
func (c *Console) timelineOf(r *http.Request, s *session, f *form) timelineData {
	now := c.cfg.Now().UTC()
	to := now.AddDate(0, 0, TimelineDays)
	out := timelineData{From: now.Format(utcLayout), To: to.Format(utcLayout)}
	switch f.Kind {
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
			o, err := localtime.Parse(t.LocalTime)
			if err != nil {
				l.Errors = append(l.Errors, err.Error())
				continue
			}
			l.Fires = append(l.Fires, dailyFires(now, TimelineDays, o, loc)...)
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
