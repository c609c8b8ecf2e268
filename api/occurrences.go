package api

import (
	"net/http"
	"time"
)

// Occurrence is the JSON form of one firing of a reminder at a location.
type Occurrence struct {
	ID          int64      `json:"id"`
	Reminder    string     `json:"reminder"`
	Location    string     `json:"location"`
	Zone        string     `json:"zone"`
	FireAt      time.Time  `json:"fire_at"`
	ExpiresAt   time.Time  `json:"expires_at"`
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
	q := a.db.WithContext(r.Context()).Table("occurrences AS o").
		Select("o.id, o.fire_at, o.expires_at, o.state, o.groups_done, o.groups_total, o.delivered, o.failed, o.expired, o.fired_at, o.done_at, l.name AS location, l.zone").
		Joins("JOIN locations l ON l.id = o.location_id").Where("o.reminder_id = ?", rem.ID)
	if st := r.URL.Query().Get("state"); st != "" {
		q = q.Where("o.state = ?", st)
	}
	if err := q.Order("o.fire_at DESC, l.name").Limit(limit).Scan(&out.Occurrences).Error; err != nil {
		return err
	}
	for i := range out.Occurrences {
		o := &out.Occurrences[i]
		o.Reminder = key
		o.FireAt, o.ExpiresAt = o.FireAt.UTC(), o.ExpiresAt.UTC()
		if o.FiredAt != nil {
			late := max(0, o.FiredAt.Sub(o.FireAt).Milliseconds())
			o.LateMs = &late
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
