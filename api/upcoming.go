package api

import (
	"net/http"
	"sort"
	"time"

	"github.com/chime-dev/chime/fire"
	"github.com/chime-dev/chime/localtime"
)

// Upcoming is one fire to come of a reminder at a location.
type Upcoming struct {
	Location  string    `json:"location"`
	Zone      string    `json:"zone"`
	LocalTime string    `json:"local_time"` // the reminder time as defined
	FireAt    time.Time `json:"fire_at"`    // UTC
	Local     string    `json:"local"`      // the fire instant on the location's clock, RFC 3339 with offset
	EventID   int64     `json:"event_id,omitempty"`
	// Prayer is the prayer a prayer reminder fires for; LocalTime is then
	// the prayer's time, before its offset. Source says where that time
	// came from: "computed" from the location's coordinates, or a
	// "timetable" row.
	Prayer string `json:"prayer,omitempty"`
	Source string `json:"source,omitempty"`
}

// upcoming lists the fires of a reminder in the next hours, computed from
// its times, timetable, instant or events with the same rules the scheduler
// uses.
func (a *API) upcoming(w http.ResponseWriter, r *http.Request, app int64) error {
	hours, p := intParam(r, "hours", 24, 1, 24*31)
	if p != nil {
		return p
	}
	rem, err := a.findReminder(r, app, r.PathValue("key"))
	if err != nil {
		return err
	}
	now := a.cfg.Now().UTC()
	to := now.Add(time.Duration(hours) * time.Hour)
	out := struct {
		Reminder string     `json:"reminder"`
		Kind     string     `json:"kind"`
		Paused   bool       `json:"paused"`
		From     time.Time  `json:"from"`
		To       time.Time  `json:"to"`
		Upcoming []Upcoming `json:"upcoming"`
	}{Reminder: rem.Key, Kind: rem.Kind, Paused: rem.Paused, From: now, To: to, Upcoming: []Upcoming{}}
	// The scheduler's own rules, over the window asked for, within
	// starts_at and ends_at. A paused reminder has none.
	span := func(src fire.Source) (time.Time, time.Time) {
		from, until := now, to
		if src.StartsAt != nil && src.StartsAt.After(from) {
			from = src.StartsAt.Add(-time.Millisecond)
		}
		if src.EndsAt != nil && src.EndsAt.Before(until) {
			until = *src.EndsAt
		}
		return from, until
	}
	err = fire.Instants(r.Context(), a.db, a.log, rem.ID, now, to, span, func(in fire.Instant) {
		loc, err := localtime.LoadZone(in.Zone)
		if err != nil {
			return
		}
		wall := in.At.In(loc)
		defined := in.LocalSec
		if defined < 0 {
			defined = wall.Hour()*3600 + wall.Minute()*60 + wall.Second()
		}
		u := Upcoming{
			Location: in.Location, Zone: in.Zone, LocalTime: localtime.Of(defined).String(),
			FireAt: in.At.UTC(), Local: wall.Format(time.RFC3339), EventID: in.EventID, Prayer: in.Prayer,
		}
		if in.Prayer != "" {
			u.Source = map[bool]string{true: "timetable", false: "computed"}[in.FromTimetable]
		}
		out.Upcoming = append(out.Upcoming, u)
	})
	if err != nil {
		return err
	}
	sort.Slice(out.Upcoming, func(i, j int) bool {
		if !out.Upcoming[i].FireAt.Equal(out.Upcoming[j].FireAt) {
			return out.Upcoming[i].FireAt.Before(out.Upcoming[j].FireAt)
		}
		return out.Upcoming[i].Location < out.Upcoming[j].Location
	})
	writeJSON(w, http.StatusOK, out)
	return nil
}
