package api

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/store"
	"github.com/chime-dev/chime/timetable"
)

// DefaultMaxTimetable bounds one timetable upload: 16 MiB of CSV is about
// 400,000 rows, a year of five daily times for some 200 locations; a
// larger timetable is sent in parts (by location or by month).
const DefaultMaxTimetable = 16 << 20

// timetableBatch is how many rows one transaction of an import writes.
const timetableBatch = 1000

// TimetableRow is the JSON form of one dated time.
type TimetableRow struct {
	Location  string    `json:"location"`
	Zone      string    `json:"zone"`
	Date      string    `json:"date"`
	LocalTime string    `json:"local_time"`
	FireAt    time.Time `json:"fire_at"` // the instant, UTC
}

// importTimetable stores a CSV timetable (package timetable describes the
// format): every row or, if any is bad, none.
//
// Every row is checked before the first write, and the rows are then
// written timetableBatch at a time, each batch in a transaction of its own,
// so that an import of 400,000 rows never holds one transaction (its
// locks, its undo log, a connection) for the whole file. Should a write
// fail midway (an outage), the batches before it stay: the answer is a 5xx
// that can be retried, and sending the same file again completes the
// import, because every write is an upsert keyed by (reminder, location,
// date) and the locations created are found the second time. A partial
// import is incomplete, never inconsistent: each row is one fire time and
// stands alone. Staging the rows and swapping them in would make the
// import atomic, but the swap is again one statement over every row,
// holding the locks the batches avoid.
func (a *API) importTimetable(w http.ResponseWriter, r *http.Request, app int64) error {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		return problem(http.StatusUnsupportedMediaType, "the timetable must be sent as text/csv (columns location,zone,date,name,local_time)")
	}
	limit := a.cfg.MaxTimetable
	rows, err := timetable.Parse(http.MaxBytesReader(w, r.Body, limit), 20)
	var tooBig *http.MaxBytesError
	var bad timetable.Errors
	switch {
	case errors.As(err, &tooBig):
		return problem(http.StatusRequestEntityTooLarge, fmt.Sprintf("the timetable is over the limit of %d bytes; split it (by location or by month)", limit))
	case errors.As(err, &bad):
		errs := make([]FieldError, len(bad))
		for i, e := range bad {
			errs[i] = FieldError{Field: fmt.Sprintf("line %d: %s", e.Line, e.Column), Message: e.Msg}
		}
		return problem(http.StatusUnprocessableEntity, "some timetable rows are not valid; none were stored", errs...)
	case err != nil:
		return problem(http.StatusBadRequest, "the timetable cannot be read: "+err.Error())
	}
	if len(rows) == 0 {
		return problem(http.StatusUnprocessableEntity, "the timetable has a header but no rows")
	}
	ctx := r.Context()
	names := map[string]bool{}
	places := map[string]string{}
	var errs []FieldError
	rowErr := func(row timetable.Row, col, msg string) {
		if len(errs) < 20 {
			errs = append(errs, FieldError{Field: fmt.Sprintf("line %d: %s", row.Line, col), Message: msg})
		}
	}
	for _, row := range rows {
		names[row.Name] = true
		if z, ok := places[row.Location]; !ok || z == "" {
			places[row.Location] = row.Zone
		} else if row.Zone != "" && row.Zone != z {
			rowErr(row, "zone", fmt.Sprintf("location %q is given zones %q and %q; a location has one zone", row.Location, z, row.Zone))
		}
	}
	rems, err := store.FindRemindersByKey(ctx, a.db, app, keys(names))
	if err != nil {
		return err
	}
	reminders := map[string]store.Reminder{}
	for _, rem := range rems {
		reminders[rem.Key] = rem
	}
	locs, err := store.LocationsNamed(ctx, a.db, app, keys(places))
	if err != nil {
		return err
	}
	zoneOf, known := map[string]string{}, map[string]int64{}
	for _, l := range locs {
		zoneOf[l.Name], known[l.Name] = l.Zone, l.ID
	}
	for _, row := range rows {
		rem, ok := reminders[row.Name]
		switch {
		case !ok:
			rowErr(row, "name", fmt.Sprintf("no reminder %q", row.Name))
		case rem.Kind != store.KindTimetable:
			rowErr(row, "name", fmt.Sprintf("reminder %q is a %s reminder; timetable rows need a timetable reminder", row.Name, rem.Kind))
		}
		z, known := zoneOf[row.Location]
		switch {
		case !known && row.Zone == "":
			rowErr(row, "zone", fmt.Sprintf("location %q is new: its zone is required", row.Location))
		case known && row.Zone != "" && row.Zone != z:
			rowErr(row, "zone", fmt.Sprintf("location %q has zone %q", row.Location, z))
		}
	}
	if len(errs) > 0 {
		return problem(http.StatusUnprocessableEntity, "some timetable rows are not valid; none were stored", errs...)
	}
	if r.URL.Query().Get("dry_run") == "true" {
		fresh := 0
		for name := range places {
			if _, ok := known[name]; !ok {
				fresh++
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"rows": len(rows), "reminders": len(reminders), "locations_created": fresh, "dry_run": true})
		return nil
	}

	// The new locations, in one small transaction; a concurrent import
	// creating the same one makes it run again and find it.
	fresh := map[string]string{}
	for name, zone := range places {
		if _, ok := known[name]; !ok {
			fresh[name] = zone
		}
	}
	locIDs, err := store.EnsureLocations(ctx, a.db, app, fresh)
	if err != nil {
		return zoneProblem(err)
	}
	created := len(locIDs)
	maps.Copy(locIDs, known)
	defer func() {
		for key := range reminders {
			a.announce(ctx, key)
		}
	}()
	for start := 0; start < len(rows); start += timetableBatch {
		part := rows[start:min(start+timetableBatch, len(rows))]
		dts := make([]store.DatedTime, len(part))
		for i, row := range part {
			dts[i] = store.DatedTime{ReminderID: reminders[row.Name].ID, LocationID: locIDs[row.Location], Date: row.Date, LocalSec: row.LocalSec}
		}
		if err := store.StoreDated(ctx, a.db, dts); err != nil {
			return fmt.Errorf("store timetable rows %d to %d of %d (those before are stored; the same file sent again completes the import): %w",
				start+1, start+len(part), len(rows), err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]int{"rows": len(rows), "reminders": len(reminders), "locations_created": created})
	return nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func (a *API) timetableReminder(r *http.Request, app int64) (store.Reminder, error) {
	rem, err := a.findReminder(r, app, r.PathValue("key"))
	if err == nil && rem.Kind != store.KindTimetable {
		err = problem(http.StatusConflict, fmt.Sprintf("reminder %q is a %s reminder; only timetable reminders have a timetable", rem.Key, rem.Kind))
	}
	return rem, err
}

// listTimetable returns a reminder's dated times, by date and location.
func (a *API) listTimetable(w http.ResponseWriter, r *http.Request, app int64) error {
	limit, p := intParam(r, "limit", 1000, 1, 10000)
	if p != nil {
		return p
	}
	rem, err := a.timetableReminder(r, app)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	from, to := q.Get("from"), q.Get("to")
	for name, v := range map[string]string{"from": from, "to": to} {
		if _, err := time.Parse(time.DateOnly, v); v != "" && err != nil {
			return problem(http.StatusBadRequest, fmt.Sprintf("query parameter %s must be a date, YYYY-MM-DD", name))
		}
	}
	rows, err := store.Timetable(r.Context(), a.db, rem.ID, store.TimetableFilter{From: from, To: to, Location: q.Get("location")}, limit)
	if err != nil {
		return err
	}
	out := struct {
		Reminder string         `json:"reminder"`
		Rows     []TimetableRow `json:"rows"`
	}{Reminder: rem.Key, Rows: make([]TimetableRow, 0, len(rows))}
	for _, x := range rows {
		out.Rows = append(out.Rows, timetableRow(x.Name, x.Zone, x.Date, x.LocalSec))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func timetableRow(location, zone, date string, sec int) TimetableRow {
	row := TimetableRow{Location: location, Zone: zone, Date: date, LocalTime: localtime.Of(sec).String()}
	if loc, err := localtime.LoadZone(zone); err == nil {
		if d, err := time.Parse(time.DateOnly, date); err == nil {
			row.FireAt = localtime.On(d.Year(), d.Month(), d.Day(), localtime.Of(sec), loc).UTC()
		}
	}
	return row
}

func (a *API) timetablePath(r *http.Request) (location, date string, p *Problem) {
	location, date = r.PathValue("location"), r.PathValue("date")
	if d, err := time.Parse(time.DateOnly, date); err != nil || d.Format(time.DateOnly) != date {
		return "", "", problem(http.StatusUnprocessableEntity, fmt.Sprintf("%q is not a date in the form YYYY-MM-DD", date))
	}
	return location, date, nil
}

// putTimetableRow sets one dated time. The location must exist or the body
// must give its zone.
func (a *API) putTimetableRow(w http.ResponseWriter, r *http.Request, app int64) error {
	location, date, p := a.timetablePath(r)
	if p != nil {
		return p
	}
	var in struct {
		LocalTime string `json:"local_time"`
		Zone      string `json:"zone"`
	}
	if p := decode(w, r, 4096, &in); p != nil {
		return p
	}
	sec, err := localtime.Parse(in.LocalTime)
	if err != nil {
		return problem(http.StatusUnprocessableEntity, "local_time: "+err.Error(), FieldError{Field: "local_time", Message: err.Error()})
	}
	rem, err := a.timetableReminder(r, app)
	if err != nil {
		return err
	}
	l, err := store.FindLocation(r.Context(), a.db, app, location)
	switch {
	case errors.Is(err, store.ErrNotFound) && in.Zone == "":
		return problem(http.StatusUnprocessableEntity, fmt.Sprintf("location %q is new: its zone is required", location),
			FieldError{Field: "zone", Message: "is required for a new location"})
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return err
	}
	zone := l.Zone
	if zone == "" {
		zone = in.Zone
	}
	if !keyPattern.MatchString(location) {
		return problem(http.StatusUnprocessableEntity, "the location must be 1-100 letters, digits, '_', '.' or '-'")
	}
	if _, err := localtime.LoadZone(zone); err != nil {
		return problem(http.StatusUnprocessableEntity, "zone: "+err.Error(), FieldError{Field: "zone", Message: err.Error()})
	}
	if in.Zone != "" && in.Zone != zone {
		return problem(http.StatusConflict, fmt.Sprintf("location %q has zone %q", location, zone))
	}
	if err := store.PutDatedTime(r.Context(), a.db, app, rem.ID, location, zone, date, int(sec)); err != nil {
		return zoneProblem(err)
	}
	a.announce(r.Context(), rem.Key)
	writeJSON(w, http.StatusOK, timetableRow(location, zone, date, int(sec)))
	return nil
}

// deleteTimetableRow removes one dated time; its pending occurrence is
// canceled by the planner.
func (a *API) deleteTimetableRow(w http.ResponseWriter, r *http.Request, app int64) error {
	location, date, p := a.timetablePath(r)
	if p != nil {
		return p
	}
	rem, err := a.timetableReminder(r, app)
	if err != nil {
		return err
	}
	err = store.DeleteDatedTime(r.Context(), a.db, app, rem.ID, location, date)
	if errors.Is(err, store.ErrNotFound) {
		return problem(http.StatusNotFound, fmt.Sprintf("reminder %q has no time at %q on %s", rem.Key, location, date))
	}
	if err != nil {
		return err
	}
	a.announce(r.Context(), rem.Key)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
