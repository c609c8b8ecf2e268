package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/chime-dev/chime/store"
)

// Occurrence is the JSON form of one firing of a reminder at a location.
type Occurrence struct {
	ID       int64  `json:"id"`
	Reminder string `json:"reminder"`
	EventID  int64  `json:"event_id,omitempty"`
	// TestUser is set on a test send, or on the catch-up of a user who
	// moved into a zone after its occurrence fired (docs/user-zones.md):
	// the one user it was sent to. Neither is listed among a reminder's
	// occurrences.
	TestUser  string    `json:"test_user,omitempty"`
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
	LateMs *int64 `json:"late_ms,omitempty"`
	// Late is set when it fired more than LateAfter after its instant (a
	// spread send: LateMs, against its slots, is over LateAfter): it was
	// caught up after an outage.
	Late bool `json:"late"`

	// Opens counts the users who opened its message, each once; OpenRate
	// is Opens over Delivered (0 before any delivery).
	Opens    int64   `json:"opens"`
	OpenRate float64 `json:"open_rate"`
	// Spread is set on a spread send: its groups go on the queue at
	// planned slots over this long after the instant, and LateMs is the
	// most any of them went after its own slot. GET of one occurrence adds
	// its first and last slot and how many groups are due by now.
	Spread      string     `json:"spread,omitempty"`
	FirstSlotAt *time.Time `json:"first_slot_at,omitempty"`
	LastSlotAt  *time.Time `json:"last_slot_at,omitempty"`
	GroupsDue   *int       `json:"groups_due,omitempty"`
	// Users not sent by the delivery policy: opted out, in quiet hours
	// (dropped, or no longer valid when they end) and over a frequency cap.
	SkippedPreference int64 `json:"skipped_preference"`
	Quiet             int64 `json:"quiet"`
	Capped            int64 `json:"capped"`
}

// LateAfter is how long after its instant an occurrence must fire to count
// as late. Normal fires happen within milliseconds.
const LateAfter = 5 * time.Second

// occurrences is the JSON form of rows, with their instants in UTC and
// their lateness worked out; reminder, if set, names their reminder.
func occurrences(rows []store.OccurrenceRow, reminder string) []Occurrence {
	occs := make([]Occurrence, len(rows))
	for i, x := range rows {
		occs[i] = Occurrence{
			ID: x.ID, Reminder: x.Reminder, EventID: x.EventID, TestUser: x.TestUser, Location: x.Location, Zone: x.Zone, FireAt: x.FireAt, ExpiresAt: x.ExpiresAt,
			MissAt: x.MissAt, State: x.State, GroupsDone: x.GroupsDone, GroupsTotal: x.GroupsTotal, Delivered: x.Delivered, Failed: x.Failed,
			Expired: x.Expired, FiredAt: x.FiredAt, DoneAt: x.DoneAt,
			SkippedPreference: x.SkippedPreference, Quiet: x.Quiet, Capped: x.Capped,
		}
		occs[i].Opens = x.Opens
		if x.Delivered > 0 {
			occs[i].OpenRate = float64(x.Opens) / float64(x.Delivered)
		}
		if x.SpreadS > 0 {
			occs[i].Spread = (time.Duration(x.SpreadS) * time.Second).String()
		}
	}
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
			// A spread send's groups are late against their slots, not
			// against the instant.
			late := max(0, o.FiredAt.Sub(o.FireAt).Milliseconds(), rows[i].SlotsLateMs)
			o.LateMs = &late
			o.Late = time.Duration(late)*time.Millisecond > LateAfter
		}
	}
	return occs
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
	rows, err := store.ReminderOccurrences(r.Context(), a.db, rem.ID, r.URL.Query().Get("state"), limit)
	if err != nil {
		return err
	}
	out := struct {
		Occurrences []Occurrence `json:"occurrences"`
	}{Occurrences: occurrences(rows, key)}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getOccurrence(w http.ResponseWriter, r *http.Request, app int64) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return problem(http.StatusNotFound, fmt.Sprintf("no occurrence %q", r.PathValue("id")))
	}
	row, err := store.FindOccurrence(r.Context(), a.db, app, id)
	if errors.Is(err, store.ErrNotFound) {
		return problem(http.StatusNotFound, fmt.Sprintf("no occurrence %d", id))
	}
	if err != nil {
		return err
	}
	out := occurrences([]store.OccurrenceRow{row}, "")[0]
	if row.SpreadS > 0 {
		sl, err := store.OccurrenceSlots(r.Context(), a.db, row.ID, a.cfg.Now())
		if err != nil {
			return err
		}
		out.GroupsDue = &sl.Due
		if sl.First != nil {
			first, last := sl.First.UTC(), sl.Last.UTC()
			out.FirstSlotAt, out.LastSlotAt = &first, &last
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
