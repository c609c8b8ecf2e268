package api

import (
	"net/http"
	"sort"
	"time"

	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/store"
)

// Upcoming is one fire to come of a reminder at a location.
type Upcoming struct {
	Location  string    `json:"location"`
	Zone      string    `json:"zone"`
	LocalTime string    `json:"local_time"` // the reminder time as defined
	FireAt    time.Time `json:"fire_at"`    // UTC
	Local     string    `json:"local"`      // the fire instant on the location's clock, RFC 3339 with offset
	EventID   int64     `json:"event_id,omitempty"`
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
	from, to := now, now.Add(time.Duration(hours)*time.Hour)
	if rem.StartsAt != nil && rem.StartsAt.After(from) {
		from = rem.StartsAt.Add(-time.Millisecond)
	}
	if rem.EndsAt != nil && rem.EndsAt.Before(to) {
		to = *rem.EndsAt
	}
	out := struct {
		Reminder string     `json:"reminder"`
		Kind     string     `json:"kind"`
		Paused   bool       `json:"paused"`
		From     time.Time  `json:"from"`
		To       time.Time  `json:"to"`
		Upcoming []Upcoming `json:"upcoming"`
	}{Reminder: rem.Key, Kind: rem.Kind, Paused: rem.Paused, From: now, To: now.Add(time.Duration(hours) * time.Hour), Upcoming: []Upcoming{}}
	// add lists instant at; defined is the local time the reminder names, or
	// -1 for an instant (once, topic), whose local time of day is shown.
	add := func(name, zone string, at time.Time, defined int, event int64) {
		loc, err := localtime.LoadZone(zone)
		if err != nil || !at.After(from) || at.After(to) {
			return
		}
		wall := at.In(loc)
		if defined < 0 {
			defined = wall.Hour()*3600 + wall.Minute()*60 + wall.Second()
		}
		out.Upcoming = append(out.Upcoming, Upcoming{
			Location: name, Zone: zone, LocalTime: localtime.Of(defined).String(),
			FireAt: at, Local: wall.Format(time.RFC3339), EventID: event,
		})
	}
	db := a.db.WithContext(r.Context())
	kind := rem.Kind
	if rem.Paused {
		kind = "" // a paused reminder does not fire
	}
	switch kind {
	case store.KindDaily:
		rows, err := a.reminderTimes(r.Context(), rem.ID)
		if err != nil {
			return err
		}
		for _, x := range rows {
			loc, err := localtime.LoadZone(x.Zone)
			if err != nil {
				continue
			}
			for _, at := range localtime.Between(from, to, localtime.Of(x.LocalSec), loc) {
				out.Upcoming = append(out.Upcoming, Upcoming{
					Location: x.Name, Zone: x.Zone, LocalTime: localtime.Of(x.LocalSec).String(),
					FireAt: at, Local: at.In(loc).Format(time.RFC3339),
				})
			}
		}
	case store.KindTimetable:
		var rows []struct {
			Name, Zone, Date string
			LocalSec         int
		}
		err := db.Table("dated_times AS dt").Select("l.name, l.zone, dt.date, dt.local_sec").
			Joins("JOIN locations l ON l.id = dt.location_id").
			Where("dt.reminder_id = ? AND dt.date BETWEEN ? AND ?", rem.ID,
				from.Add(-14*time.Hour).Format(time.DateOnly), to.Add(14*time.Hour).Format(time.DateOnly)).
			Scan(&rows).Error
		if err != nil {
			return err
		}
		for _, x := range rows {
			row := timetableRow(x.Name, x.Zone, x.Date, x.LocalSec)
			add(x.Name, x.Zone, row.FireAt, x.LocalSec, 0)
		}
	case store.KindOnce, store.KindTopic:
		var places []struct{ Name, Zone string }
		err := db.Table("reminder_locations AS rl").Select("l.name, l.zone").
			Joins("JOIN locations l ON l.id = rl.location_id").Where("rl.reminder_id = ?", rem.ID).Scan(&places).Error
		if err != nil {
			return err
		}
		type instant struct {
			at    time.Time
			event int64
		}
		var instants []instant
		if rem.Kind == store.KindOnce && rem.At != nil {
			offs, err := store.ParseOffsets(rem.Offsets)
			if err != nil {
				return err
			}
			for _, o := range offs {
				instants = append(instants, instant{at: rem.At.Add(-o).UTC()})
			}
		} else {
			var evs []store.Event
			if err := db.Select("id", "fire_at").Where("reminder_id = ? AND canceled = ? AND fire_at > ? AND fire_at <= ?", rem.ID, false, from, to).
				Order("fire_at").Limit(10000).Find(&evs).Error; err != nil {
				return err
			}
			for _, e := range evs {
				instants = append(instants, instant{at: e.FireAt.UTC(), event: e.ID})
			}
		}
		for _, p := range places {
			for _, in := range instants {
				add(p.Name, p.Zone, in.at, -1, in.event)
			}
		}
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
