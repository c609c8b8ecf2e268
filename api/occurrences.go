package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"gorm.io/gorm"
)

// Occurrence is the JSON form of one firing of a reminder at a location.
type Occurrence struct {
	ID        int64     `json:"id"`
	Reminder  string    `json:"reminder"`
	EventID   int64     `json:"event_id,omitempty"`
	Location  string    `json:"location"`
	Zone      string    `json:"zone"`
	FireAt    time.Time `json:"fire_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// MissAt ends the grace window: an occurrence not fired by then is
	// recorded as missed.
	MissAt      *time.Time `json:"miss_at,omitempty"`
	State       string     `json:"state"`
	GroupsDone  int        `json:"groups_done"`
	GroupsTotal int        `json:"groups_total"`
	Delivered   int64      `json:"delivered"`
	Failed      int64      `json:"failed"`
	Expired     int64      `json:"expired"`
	FiredAt     *time.Time `json:"fired_at,omitempty"`
	DoneAt      *time.Time `json:"done_at,omitempty"`
	// LateMs is how long after its instant the occurrence fired: about zero
	// normally, more when it was caught up after an outage.
	LateMs *int64 `json:"late_ms,omitempty" gorm:"-"`
	// Late is set when it fired more than LateAfter after its instant: it
	// was caught up after an outage.
	Late bool `json:"late" gorm:"-"`
}

// LateAfter is how long after its instant an occurrence must fire to count
// as late. Normal fires happen within milliseconds.
const LateAfter = 5 * time.Second

func (a *API) occurrenceQuery(r *http.Request) *gorm.DB {
	return a.db.WithContext(r.Context()).Table("occurrences AS o").
		Select("o.id, o.event_id, o.fire_at, o.expires_at, o.miss_at, o.state, o.groups_done, o.groups_total, o.delivered, o.failed, o.expired, o.fired_at, o.done_at, l.name AS location, l.zone, rem.`key` AS reminder").
		Joins("JOIN locations l ON l.id = o.location_id").
		Joins("JOIN reminders rem ON rem.id = o.reminder_id")
}

// finishOccurrences puts the rows' instants in UTC and works out lateness.
func finishOccurrences(occs []Occurrence, reminder string) {
	for i := range occs {
		o := &occs[i]
		if reminder != "" {
			o.Reminder = reminder
		}
		o.FireAt, o.ExpiresAt = o.FireAt.UTC(), o.ExpiresAt.UTC()
		if o.MissAt == nil {
			o.MissAt = &o.ExpiresAt
		}
		m := o.MissAt.UTC()
		o.MissAt = &m
		if o.FiredAt != nil {
			late := max(0, o.FiredAt.Sub(o.FireAt).Milliseconds())
			o.LateMs = &late
			o.Late = time.Duration(late)*time.Millisecond > LateAfter
		}
	}
}

func (a *API) listOccurrences(w http.ResponseWriter, r *http.Request, app int64) error {
	key := r.URL.Query().Get("reminder")
	if key == "" {
		return problem(http.StatusBadRequest, "query parameter reminder (a reminder key) is required")
	}
	limit, p := intParam(r, "limit", 100, 1, 1000)
	if p != nil {
		return p
	}
	rem, err := a.findReminder(r, app, key)
	if err != nil {
		return err
	}
	out := struct {
		Occurrences []Occurrence `json:"occurrences"`
	}{Occurrences: []Occurrence{}}
	q := a.occurrenceQuery(r).Where("o.reminder_id = ?", rem.ID)
	if st := r.URL.Query().Get("state"); st != "" {
		q = q.Where("o.state = ?", st)
	}
	if err := q.Order("o.fire_at DESC, l.name").Limit(limit).Scan(&out.Occurrences).Error; err != nil {
		return err
	}
	finishOccurrences(out.Occurrences, key)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getOccurrence(w http.ResponseWriter, r *http.Request, app int64) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return problem(http.StatusNotFound, fmt.Sprintf("no occurrence %q", r.PathValue("id")))
	}
	var out []Occurrence
	if err := a.occurrenceQuery(r).Where("o.id = ? AND rem.app_id = ?", id, app).Scan(&out).Error; err != nil {
		return err
	}
	if len(out) == 0 {
		return problem(http.StatusNotFound, fmt.Sprintf("no occurrence %d", id))
	}
	finishOccurrences(out, "")
	writeJSON(w, http.StatusOK, out[0])
	return nil
}
