package api

import (
	"net/http"
	"sort"
	"time"

	"github.com/chime-dev/chime/localtime"
)

// Upcoming is one fire to come of a reminder at a location.
type Upcoming struct {
	Location  string    `json:"location"`
	Zone      string    `json:"zone"`
	LocalTime string    `json:"local_time"` // the reminder time as defined
	FireAt    time.Time `json:"fire_at"`    // UTC
	Local     string    `json:"local"`      // the fire instant on the location's clock, RFC 3339 with offset
}

// upcoming lists the fires of a reminder in the next hours, computed from
// its times with the same rules the scheduler uses.
func (a *API) upcoming(w http.ResponseWriter, r *http.Request, app int64) error {
	hours, p := intParam(r, "hours", 24, 1, 24*31)
	if p != nil {
		return p
	}
	rem, err := a.findReminder(r, app, r.PathValue("key"))
	if err != nil {
		return err
	}
	rows, err := a.reminderTimes(r.Context(), rem.ID)
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
		From     time.Time  `json:"from"`
		To       time.Time  `json:"to"`
		Upcoming []Upcoming `json:"upcoming"`
	}{Reminder: rem.Key, From: now, To: now.Add(time.Duration(hours) * time.Hour), Upcoming: []Upcoming{}}
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
	sort.Slice(out.Upcoming, func(i, j int) bool {
		if !out.Upcoming[i].FireAt.Equal(out.Upcoming[j].FireAt) {
			return out.Upcoming[i].FireAt.Before(out.Upcoming[j].FireAt)
		}
		return out.Upcoming[i].Location < out.Upcoming[j].Location
	})
	writeJSON(w, http.StatusOK, out)
	return nil
}
