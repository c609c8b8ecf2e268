package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/store"
	"github.com/chime-dev/chime/userid"
)

// Subscriber is one user registered for a reminder at a location.
type Subscriber struct {
	UserID   string `json:"user_id"`
	Location string `json:"location"`
	Group    int    `json:"group"`
}

// validUserID is userid.Check: the gateway checks token subjects with the
// same rule.
func validUserID(id string) string { return userid.Check(id) }

// reminderLocations returns the reminder and the IDs of the locations its
// times name.
func (a *API) reminderLocations(r *http.Request, app int64) (store.Reminder, map[string]int64, error) {
	rem, err := a.findReminder(r, app, r.PathValue("key"))
	if err != nil {
		return rem, nil, err
	}
	locs, err := store.ReminderLocations(r.Context(), a.db, rem.ID)
	byName := make(map[string]int64, len(locs))
	for _, l := range locs {
		byName[l.Name] = l.ID
	}
	return rem, byName, err
}

// subscribe stores subs (already validated) and applies the index changes
// once the transaction commits.
func (a *API) subscribe(ctx context.Context, rem store.Reminder, subs []store.Subscription) error {
	old, err := store.Subscribe(ctx, a.db, rem.ID, subs)
	if err != nil {
		return err
	}
	was := make(map[string]store.Subscription, len(old))
	for _, o := range old {
		was[o.UserID] = o
	}
	var add, remove []grouping.Member
	for _, s := range subs {
		if o, ok := was[s.UserID]; ok {
			if o.LocationID == s.LocationID {
				continue // already in its group (the bucket never changes): the index adds only new members
			}
			remove = append(remove, grouping.Member{Loc: grouping.Loc{Reminder: rem.ID, Location: o.LocationID}, Bucket: o.GroupNo, UserID: o.UserID})
		}
		add = append(add, grouping.Member{Loc: grouping.Loc{Reminder: rem.ID, Location: s.LocationID}, Bucket: s.GroupNo, UserID: s.UserID})
	}
	return a.index.Apply(ctx, add, remove)
}

func (a *API) putSubscriber(w http.ResponseWriter, r *http.Request, app int64) error {
	user := r.PathValue("user_id")
	if msg := validUserID(user); msg != "" {
		return problem(http.StatusUnprocessableEntity, "user_id "+msg)
	}
	var in struct {
		Location string `json:"location"`
	}
	if p := decode(w, r, 64<<10, &in); p != nil {
		return p
	}
	rem, locs, err := a.reminderLocations(r, app)
	if err != nil {
		return err
	}
	loc, ok := locs[in.Location]
	if in.Location == "" && len(locs) == 1 {
		// A reminder with one location (a topic or a one-off event
		// without places) needs none named.
		for name, id := range locs {
			loc, ok, in.Location = id, true, name
		}
	}
	if !ok {
		return problem(http.StatusUnprocessableEntity, fmt.Sprintf("unknown location %q: reminder %q has no time there", in.Location, rem.Key),
			FieldError{Field: "location", Message: "must be a location of the reminder's times"})
	}
	sub := store.Subscription{ReminderID: rem.ID, UserID: user, LocationID: loc, GroupNo: grouping.Bucket(user)}
	if err := a.subscribe(r.Context(), rem, []store.Subscription{sub}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Subscriber{UserID: user, Location: in.Location, Group: sub.GroupNo})
	return nil
}

// bulkEntry is one subscriber of a bulk request.
type bulkEntry struct {
	UserID   string `json:"user_id"`
	Location string `json:"location"`
}

// errTooMany is a bulk request of more subscribers than the limit.
var errTooMany = errors.New("too many subscribers")

// decodeSubscribers reads {"subscribers": [...]} one entry at a time and
// stops at the first entry past max: a request holds its entries, never its
// whole body beside them (json.Decoder.Decode buffers the whole document),
// and a body of a million entries is refused after max+1.
func decodeSubscribers(dec *json.Decoder, max int) ([]bulkEntry, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err // io.EOF: an empty body
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("the request body must be a JSON object")
	}
	var out []bulkEntry
	seen := false
	for dec.More() {
		if tok, err = dec.Token(); err != nil {
			return nil, unexpectedEOF(err)
		}
		if key, _ := tok.(string); !strings.EqualFold(key, "subscribers") {
			return nil, fmt.Errorf("json: unknown field %q", key)
		} else if seen {
			return nil, errors.New(`field "subscribers" appears twice`)
		}
		seen = true
		if tok, err = dec.Token(); err != nil {
			return nil, unexpectedEOF(err)
		}
		if tok == nil {
			continue // null: none
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return nil, errors.New(`field "subscribers" must be a JSON array`)
		}
		for dec.More() {
			if len(out) == max {
				return nil, errTooMany
			}
			var e bulkEntry
			if err := dec.Decode(&e); err != nil {
				var typ *json.UnmarshalTypeError
				if errors.As(err, &typ) {
					typ.Field = strings.TrimSuffix(fmt.Sprintf("subscribers[%d].%s", len(out), typ.Field), ".")
				}
				return nil, unexpectedEOF(err)
			}
			out = append(out, e)
		}
		if _, err := dec.Token(); err != nil { // ]
			return nil, unexpectedEOF(err)
		}
	}
	if _, err := dec.Token(); err != nil { // }
		return nil, unexpectedEOF(err)
	}
	return out, end(dec)
}

// unexpectedEOF is err, with the end of the body inside the document told
// from an empty body.
func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (a *API) postSubscribers(w http.ResponseWriter, r *http.Request, app int64) error {
	dec, p := jsonBody(w, r, a.cfg.MaxBody)
	if p != nil {
		return p
	}
	entries, err := decodeSubscribers(dec, a.cfg.MaxBulk)
	if errors.Is(err, errTooMany) {
		return problem(http.StatusRequestEntityTooLarge, fmt.Sprintf("at most %d subscribers a request; this one has more", a.cfg.MaxBulk))
	}
	if p := decodeProblem(err, a.cfg.MaxBody); p != nil {
		return p
	}
	if len(entries) == 0 {
		return problem(http.StatusUnprocessableEntity, "subscribers must hold at least one {user_id, location}")
	}
	rem, locs, err := a.reminderLocations(r, app)
	if err != nil {
		return err
	}
	var errs []FieldError
	subs := make([]store.Subscription, 0, len(entries))
	pos := make(map[string]int, len(entries))
	for i, s := range entries {
		if msg := validUserID(s.UserID); msg != "" {
			errs = append(errs, FieldError{Field: fmt.Sprintf("subscribers[%d].user_id", i), Message: msg})
			continue
		}
		loc, ok := locs[s.Location]
		if s.Location == "" && len(locs) == 1 {
			for _, id := range locs {
				loc, ok = id, true
			}
		}
		if !ok {
			errs = append(errs, FieldError{Field: fmt.Sprintf("subscribers[%d].location", i), Message: fmt.Sprintf("unknown location %q", s.Location)})
			continue
		}
		sub := store.Subscription{ReminderID: rem.ID, UserID: s.UserID, LocationID: loc, GroupNo: grouping.Bucket(s.UserID)}
		if j, dup := pos[s.UserID]; dup {
			subs[j] = sub // the last entry for a user wins
			continue
		}
		pos[s.UserID] = len(subs)
		subs = append(subs, sub)
	}
	if len(errs) > 0 {
		if len(errs) > 20 {
			errs = append(errs[:20], FieldError{Field: "subscribers", Message: fmt.Sprintf("and %d more errors", len(errs)-20)})
		}
		return problem(http.StatusUnprocessableEntity, "some subscribers are not valid; none were stored", errs...)
	}
	if err := a.subscribe(r.Context(), rem, subs); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"registered": len(subs)})
	return nil
}

func (a *API) deleteSubscriber(w http.ResponseWriter, r *http.Request, app int64) error {
	user := r.PathValue("user_id")
	rem, err := a.findReminder(r, app, r.PathValue("key"))
	if err != nil {
		return err
	}
	sub, err := store.Unsubscribe(r.Context(), a.db, rem.ID, user)
	if errors.Is(err, store.ErrNotFound) {
		return problem(http.StatusNotFound, fmt.Sprintf("user %q is not subscribed to reminder %q", user, rem.Key))
	}
	if err != nil {
		return err
	}
	m := grouping.Member{Loc: grouping.Loc{Reminder: rem.ID, Location: sub.LocationID}, Bucket: sub.GroupNo, UserID: user}
	if err := a.index.Apply(r.Context(), nil, []grouping.Member{m}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
