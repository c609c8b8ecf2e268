package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/store"
)

// PageSize is how many rows a list page shows.
const PageSize = 50

type listRow struct {
	Key, Kind, Title, State string
	Subscribers, Locations  int64
	NextLocal, NextUTC      string
	NextLocation            string
}

type listData struct {
	Q, Next string
	Rows    []listRow
	After   string
}

// reminders lists the app's reminders, searched and paged.
func (c *Console) reminders(w http.ResponseWriter, r *http.Request, s *session) error {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	after := r.URL.Query().Get("after")
	if len(q) > 100 {
		q = q[:100]
	}
	rems, err := store.SearchReminders(r.Context(), c.db, s.App.ID, store.ReminderFilter{Search: q, After: after}, PageSize)
	if err != nil {
		return err
	}
	ids := make([]int64, len(rems))
	for i, rem := range rems {
		ids[i] = rem.ID
	}
	next, err := store.NextFires(r.Context(), c.db, ids, c.cfg.Now())
	if err != nil {
		return err
	}
	d := listData{Q: q, After: after}
	for _, rem := range rems {
		row := listRow{Key: rem.Key, Kind: rem.Kind, Title: rem.Title, State: "active", Subscribers: rem.Subscribers, Locations: rem.Locations}
		if rem.Paused {
			row.State = "paused"
		}
		if n, ok := next[rem.ID]; ok {
			if loc, err := time.LoadLocation(n.Zone); err == nil {
				row.NextLocal = localLine(n.FireAt, loc)
			}
			row.NextUTC, row.NextLocation = n.FireAt.UTC().Format(utcLayout), n.Location
		}
		d.Rows = append(d.Rows, row)
	}
	if len(rems) == PageSize {
		d.Next = rems[len(rems)-1].Key
	}
	c.render(w, http.StatusOK, "reminders", page{Title: "Reminders", Nav: "reminders", S: s, Data: d})
	return nil
}

func (c *Console) loadReminder(r *http.Request, s *session, key string) (api.Reminder, error) {
	var rem api.Reminder
	err := c.call(r, s, http.MethodGet, "/v1/reminders/"+url.PathEscape(key), "", nil, &rem)
	return rem, err
}

// EventsShown is how many of a topic's latest events its page lists.
const EventsShown = 20

type detailData struct {
	R           api.Reminder
	Upcoming    []fireLine
	Occurrences []api.Occurrence
	Audience    []store.AudienceRow
	Total       int64
	// Events are a topic's latest posted events (EventsShown of them).
	Events      []api.Event
	EventData   string
	EventAt     string
	EventErrors []string
	// TestUser, TestLocation and TestErrors are the test send form's.
	TestUser     string
	TestLocation string
	TestErrors   []string
}

// reminder shows one reminder: its next fires, its occurrences, its
// audience, and for a topic a form to post a test event.
func (c *Console) reminder(w http.ResponseWriter, r *http.Request, s *session) error {
	return c.showReminder(w, r, s, http.StatusOK, &detailData{EventData: "{}"}, "")
}

func (c *Console) showReminder(w http.ResponseWriter, r *http.Request, s *session, status int, d *detailData, msg string) error {
	key := r.PathValue("key")
	rem, err := c.loadReminder(r, s, key)
	if err != nil {
		return err
	}
	d.R = rem
	var up struct{ Upcoming []api.Upcoming }
	if err := c.call(r, s, http.MethodGet, "/v1/reminders/"+url.PathEscape(key)+"/upcoming?hours=24", "", nil, &up); err != nil {
		return err
	}
	for _, u := range up.Upcoming {
		if loc, err := time.LoadLocation(u.Zone); err == nil {
			what := u.Location + ": "
			if u.Prayer != "" {
				what = fmt.Sprintf("%s, %s (%s at %s): ", u.Location, u.Prayer, u.Source, u.LocalTime)
			}
			d.Upcoming = append(d.Upcoming, fireLine{Local: what + localLine(u.FireAt, loc), UTC: u.FireAt.UTC().Format(utcLayout)})
		}
	}
	var occ struct{ Occurrences []api.Occurrence }
	if err := c.call(r, s, http.MethodGet, "/v1/occurrences?limit=50&reminder="+url.QueryEscape(key), "", nil, &occ); err != nil {
		return err
	}
	d.Occurrences = occ.Occurrences
	if rem.Kind == "topic" {
		var evs struct{ Events []api.Event }
		if err := c.call(r, s, http.MethodGet, "/v1/events?limit="+strconv.Itoa(EventsShown)+"&topic="+url.QueryEscape(key), "", nil, &evs); err != nil {
			return err
		}
		d.Events = evs.Events
	}
	stored, err := store.FindReminder(r.Context(), c.db, s.App.ID, key)
	if err != nil {
		return err
	}
	if d.Audience, err = store.Audience(r.Context(), c.db, s.App.ID, stored.ID); err != nil {
		return err
	}
	d.Total, err = store.SubscriberCount(r.Context(), c.db, stored.ID)
	if err != nil {
		return err
	}
	c.render(w, status, "reminder", page{Title: rem.Title, Nav: "reminders", S: s, Message: msg, Data: d})
	return nil
}

type editorData struct {
	F        *form
	Timeline timelineData
	Saved    bool
}

func (c *Console) newReminder(w http.ResponseWriter, r *http.Request, s *session) error {
	f := &form{New: true, Kind: kindOf(r.URL.Query().Get("kind")).Name, Lang: "en", Errors: map[string]string{}}
	f.pad()
	c.render(w, http.StatusOK, "editor", page{Title: "New reminder", Nav: "reminders", S: s, Data: editorData{F: f, Timeline: c.timelineOf(r, s, f)}})
	return nil
}

func (c *Console) editReminder(w http.ResponseWriter, r *http.Request, s *session) error {
	rem, err := c.loadReminder(r, s, r.PathValue("key"))
	if err != nil {
		return err
	}
	f := formOf(rem)
	c.render(w, http.StatusOK, "editor", page{Title: "Edit " + rem.Key, Nav: "reminders", S: s, Data: editorData{F: f, Timeline: c.timelineOf(r, s, f)}})
	return nil
}

// saveReminder puts the form through the API; its problems are shown
// beside their fields.
func (c *Console) saveReminder(w http.ResponseWriter, r *http.Request, s *session) error {
	f := parseForm(r.PostForm)
	in := f.input()
	if r.PostFormValue("add") != "" { // more blank rows, nothing saved
		f.pad()
		c.render(w, http.StatusOK, "editor", page{Title: "Edit reminder", Nav: "reminders", S: s, Data: editorData{F: f, Timeline: c.timelineOf(r, s, f)}})
		return nil
	}
	if f.Key == "" {
		f.Errors["key"] = "is required: 1-100 letters, digits, '_', '.' or '-'"
	}
	if f.New && f.Key != "" {
		if _, err := c.loadReminder(r, s, f.Key); err == nil {
			f.Errors["key"] = fmt.Sprintf("reminder %q exists already: choose another key, or edit it", f.Key)
		}
	}
	var err error
	if len(f.Errors) == 0 {
		err = c.callJSON(r, s, http.MethodPut, "/v1/reminders/"+url.PathEscape(f.Key), in, nil)
		var p *api.Problem
		switch {
		case errors.As(err, &p) && p.Status < 500:
			if strings.Contains(p.Detail, "reminder key") {
				f.Errors["key"] = p.Detail
			} else {
				f.problems(p)
			}
		case err != nil:
			return err
		}
	}
	if len(f.Errors) > 0 || len(f.Other) > 0 {
		f.repad()
		c.render(w, http.StatusUnprocessableEntity, "editor", page{Title: "Edit reminder", Nav: "reminders", S: s,
			Message: "The reminder was not saved: see the problems beside the fields.", Data: editorData{F: f, Timeline: c.timelineOf(r, s, f)}})
		return nil
	}
	http.Redirect(w, r, Path+"/reminders/"+url.PathEscape(f.Key)+"?saved=1", http.StatusSeeOther)
	return nil
}

type pauseData struct {
	R       api.Reminder
	Skipped []fireLine
	Hours   int
}

// confirmPause says what pausing (or resuming) a reminder does before it is
// done: the fires of the next 24 hours that will not go out.
func (c *Console) confirmPause(w http.ResponseWriter, r *http.Request, s *session) error {
	key := r.PathValue("key")
	rem, err := c.loadReminder(r, s, key)
	if err != nil {
		return err
	}
	d := pauseData{R: rem, Hours: 24}
	if !rem.Paused {
		var up struct{ Upcoming []api.Upcoming }
		if err := c.call(r, s, http.MethodGet, "/v1/reminders/"+url.PathEscape(key)+"/upcoming?hours=24", "", nil, &up); err != nil {
			return err
		}
		for _, u := range up.Upcoming {
			if loc, err := time.LoadLocation(u.Zone); err == nil {
				d.Skipped = append(d.Skipped, fireLine{Local: u.Location + ": " + localLine(u.FireAt, loc), UTC: u.FireAt.UTC().Format(utcLayout)})
			}
		}
	}
	c.render(w, http.StatusOK, "pause", page{Title: "Pause " + rem.Key, Nav: "reminders", S: s, Data: d})
	return nil
}

// setPaused pauses or resumes a reminder: the stored reminder is put back
// with only paused changed, so fields this console does not edit are kept.
func (c *Console) setPaused(w http.ResponseWriter, r *http.Request, s *session) error {
	key := r.PathValue("key")
	var raw map[string]any
	if err := c.call(r, s, http.MethodGet, "/v1/reminders/"+url.PathEscape(key), "", nil, &raw); err != nil {
		return err
	}
	for _, k := range []string{"key", "created_at", "updated_at"} {
		delete(raw, k)
	}
	raw["paused"] = r.PostFormValue("paused") == "true"
	if err := c.callJSON(r, s, http.MethodPut, "/v1/reminders/"+url.PathEscape(key), raw, nil); err != nil {
		return err
	}
	http.Redirect(w, r, Path+"/reminders/"+url.PathEscape(key), http.StatusSeeOther)
	return nil
}

// postEvent posts a test event on a topic reminder through the API, which
// checks it against the topic's schema.
func (c *Console) postEvent(w http.ResponseWriter, r *http.Request, s *session) error {
	key := r.PathValue("key")
	d := &detailData{EventData: r.PostFormValue("data"), EventAt: strings.TrimSpace(r.PostFormValue("at"))}
	in := map[string]any{"topic": key}
	if !json.Valid([]byte(d.EventData)) {
		d.EventErrors = append(d.EventErrors, "data: is not valid JSON")
	} else {
		in["data"] = json.RawMessage(d.EventData)
	}
	if d.EventAt != "" {
		at, err := time.Parse(time.RFC3339, d.EventAt)
		if err != nil {
			d.EventErrors = append(d.EventErrors, "at: must be an instant with its offset, such as 2027-03-01T18:00:00Z")
		}
		in["at"] = at
	}
	if len(d.EventErrors) == 0 {
		var ev struct {
			ID int64 `json:"id"`
		}
		err := c.callJSON(r, s, http.MethodPost, "/v1/events", in, &ev)
		var p *api.Problem
		switch {
		case errors.As(err, &p) && p.Status < 500:
			d.EventErrors = append(d.EventErrors, p.Detail)
			for _, e := range p.Errors {
				d.EventErrors = append(d.EventErrors, e.Field+": "+e.Message)
			}
		case err != nil:
			return err
		default:
			return c.showReminder(w, r, s, http.StatusOK, &detailData{EventData: d.EventData}, fmt.Sprintf("Event %d posted.", ev.ID))
		}
	}
	return c.showReminder(w, r, s, http.StatusUnprocessableEntity, d, "The event was not posted.")
}

// postTestSend sends the reminder to one subscriber through the API, which
// fires it by the path of any fire, and shows that send's live view.
func (c *Console) postTestSend(w http.ResponseWriter, r *http.Request, s *session) error {
	key := r.PathValue("key")
	d := &detailData{EventData: "{}", TestUser: strings.TrimSpace(r.PostFormValue("user_id")),
		TestLocation: strings.TrimSpace(r.PostFormValue("location"))}
	var o struct {
		ID int64 `json:"id"`
	}
	err := c.callJSON(r, s, http.MethodPost, "/v1/reminders/"+url.PathEscape(key)+"/test-sends",
		map[string]string{"user_id": d.TestUser, "location": d.TestLocation}, &o)
	var p *api.Problem
	switch {
	case errors.As(err, &p) && p.Status < 500 && p.Status != http.StatusNotFound:
		d.TestErrors = append(d.TestErrors, p.Detail)
		for _, e := range p.Errors {
			d.TestErrors = append(d.TestErrors, e.Field+": "+e.Message)
		}
		return c.showReminder(w, r, s, p.Status, d, "Nothing was sent.")
	case err != nil:
		return err
	}
	http.Redirect(w, r, fmt.Sprintf("%s/occurrences/%d", Path, o.ID), http.StatusSeeOther)
	return nil
}
