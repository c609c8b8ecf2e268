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
	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/store"
	"github.com/chime-dev/chime/userid"
	"github.com/chime-dev/chime/userzone"
)

// Subscriber is one user registered for a reminder at a location.
type Subscriber struct {
	UserID   string `json:"user_id"`
	Location string `json:"location"`
	Group    int    `json:"group"`
	// Zone is the user's own zone, for a user registered with one; its
	// location is the zone's managed location ("tz:<zone>").
	Zone string `json:"zone,omitempty"`
}

// validUserID is userid.Check: the gateway checks token subjects with the
// same rule.
func validUserID(id string) string { return userid.Check(id) }

// places are a reminder's locations: IDs by name, and zones and names by
// ID.
type places struct {
	byName map[string]int64
	zone   map[int64]string
	name   map[int64]string
}

func (p places) add(l store.Location) {
	p.byName[l.Name], p.zone[l.ID], p.name[l.ID] = l.ID, l.Zone, l.Name
}

// reminderLocations returns the reminder and its locations.
func (a *API) reminderLocations(r *http.Request, app int64) (store.Reminder, places, error) {
	pl := places{byName: map[string]int64{}, zone: map[int64]string{}, name: map[int64]string{}}
	rem, err := a.findReminder(r, app, r.PathValue("key"))
	if err != nil {
		return rem, pl, err
	}
	locs, err := store.ReminderLocations(r.Context(), a.db, rem.ID)
	for _, l := range locs {
		pl.add(l)
	}
	return rem, pl, err
}

// zoneRefusal says why users of rem cannot register with a zone, or is
// nil: a timetable or prayer reminder's times belong to its own locations,
// and a daily reminder fires in users' zones only at a user_zones time.
func (a *API) zoneRefusal(ctx context.Context, rem store.Reminder, field string) error {
	switch rem.Kind {
	case store.KindTimetable, store.KindPrayer:
		return fieldProblem(field, fmt.Sprintf("reminder %q is a %s reminder, whose times are those of its own locations; register the user at one of them with location", rem.Key, rem.Kind))
	case store.KindDaily:
		zt, err := store.ZoneTimes(ctx, a.db, rem.ID)
		if err != nil {
			return err
		}
		if len(zt[rem.ID]) == 0 {
			return fieldProblem(field, fmt.Sprintf(`reminder %q has no time in users' own zones; add {"user_zones": true, "local_time": "09:00"} to its times`, rem.Key))
		}
	}
	return nil
}

// zoneLocations makes the managed locations of zones locations of rem and
// adds them to pl. Those new to the reminder have an empty index, marked
// built so that subscriptions extend it, and are announced so that the
// leader plans them.
func (a *API) zoneLocations(ctx context.Context, rem store.Reminder, zones []string, pl places) error {
	if len(zones) == 0 {
		return nil
	}
	zl, err := store.EnsureZoneLocations(ctx, a.db, rem.AppID, rem.ID, zones)
	if err != nil {
		return err
	}
	var added []grouping.Loc
	for z, l := range zl {
		pl.add(store.Location{ID: l.ID, Name: userzone.Location(z), Zone: z})
		if l.Added {
			added = append(added, grouping.Loc{Reminder: rem.ID, Location: l.ID})
		}
	}
	if len(added) > 0 {
		if err := a.index.MarkBuilt(ctx, rem.Groups, added...); err != nil {
			return err
		}
		a.announce(ctx, rem.Key)
	}
	return nil
}

// subscribe stores subs (already validated) and applies the index changes
// once the transaction commits. A user moving into a user zone gets a move
// mark (package userzone), so that a local date already reminded in the
// zone left is not reminded again, and is caught up on the new zone's
// occurrence of a local date it missed by the move.
func (a *API) subscribe(ctx context.Context, rem store.Reminder, subs []store.Subscription, pl places) error {
	old, err := store.Subscribe(ctx, a.db, rem.ID, subs)
	if err != nil {
		return err
	}
	now := a.cfg.Now()
	var moves []userzone.Move
	var moved []zoneMove
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
			if _, into := userzone.Zone(pl.name[s.LocationID]); into && pl.zone[o.LocationID] != "" {
				moves = append(moves, userzone.Move{Reminder: rem.ID, User: s.UserID, From: pl.zone[o.LocationID], At: now, Since: o.CreatedAt})
				moved = append(moved, zoneMove{user: s.UserID, from: pl.zone[o.LocationID], to: pl.zone[s.LocationID], location: s.LocationID})
			}
		}
		add = append(add, grouping.Member{Loc: grouping.Loc{Reminder: rem.ID, Location: s.LocationID}, Bucket: s.GroupNo, UserID: s.UserID})
	}
	// The marks first: the user is in the new zone's index only after them.
	if err := a.moves.Record(ctx, moves); err != nil {
		return err
	}
	if err := a.index.Apply(ctx, add, remove); err != nil {
		return err
	}
	return a.catchUp(ctx, rem, moved, now)
}

// subscriberPlace resolves one registration's location or zone; field
// prefixes the fields named ("" or "subscribers[3].").
func subscriberPlace(location, zone, field string, pl places) (string, *FieldError) {
	if zone != "" {
		if location != "" {
			return "", &FieldError{Field: field + "zone", Message: "give a location or a zone, not both"}
		}
		if _, err := localtime.LoadZone(zone); err != nil {
			return "", &FieldError{Field: field + "zone", Message: err.Error()}
		}
		return userzone.Location(zone), nil
	}
	if _, ok := pl.byName[location]; ok {
		return location, nil
	}
	if location == "" && len(pl.byName) == 1 {
		// A reminder with one location (a topic or a one-off event
		// without places) needs none named.
		for name := range pl.byName {
			return name, nil
		}
	}
	return "", &FieldError{Field: field + "location", Message: fmt.Sprintf("unknown location %q: must be a location of the reminder's times, or give zone", location)}
}

func (a *API) putSubscriber(w http.ResponseWriter, r *http.Request, app int64) error {
	user := r.PathValue("user_id")
	if msg := validUserID(user); msg != "" {
		return problem(http.StatusUnprocessableEntity, "user_id "+msg)
	}
	var in struct {
		Location string `json:"location"`
		Zone     string `json:"zone"`
	}
	if p := decode(w, r, 64<<10, &in); p != nil {
		return p
	}
	rem, pl, err := a.reminderLocations(r, app)
	if err != nil {
		return err
	}
	name, fe := subscriberPlace(in.Location, in.Zone, "", pl)
	if fe != nil {
		return problem(http.StatusUnprocessableEntity, fe.Field+": "+fe.Message, *fe)
	}
	if in.Zone != "" {
		if err := a.zoneRefusal(r.Context(), rem, "zone"); err != nil {
			return err
		}
		if err := a.zoneLocations(r.Context(), rem, []string{in.Zone}, pl); err != nil {
			return err
		}
	}
	// Created on the API's clock, which the move marks compare with.
	sub := store.Subscription{ReminderID: rem.ID, UserID: user, LocationID: pl.byName[name], GroupNo: grouping.Bucket(user), CreatedAt: a.cfg.Now()}
	if err := a.subscribe(r.Context(), rem, []store.Subscription{sub}, pl); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Subscriber{UserID: user, Location: name, Group: sub.GroupNo, Zone: in.Zone})
	return nil
}

// bulkEntry is one subscriber of a bulk request.
type bulkEntry struct {
	UserID   string `json:"user_id"`
	Location string `json:"location"`
	Zone     string `json:"zone"`
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
	rem, pl, err := a.reminderLocations(r, app)
	if err != nil {
		return err
	}
	var errs []FieldError
	names := make([]string, len(entries))
	var zones []string
	zoneAt := map[string]int{} // a zone's first row
	for i, s := range entries {
		if msg := validUserID(s.UserID); msg != "" {
			errs = append(errs, FieldError{Field: fmt.Sprintf("subscribers[%d].user_id", i), Message: msg})
			continue
		}
		name, fe := subscriberPlace(s.Location, s.Zone, fmt.Sprintf("subscribers[%d].", i), pl)
		if fe != nil {
			errs = append(errs, *fe)
			continue
		}
		names[i] = name
		if _, ok := zoneAt[s.Zone]; s.Zone != "" && !ok {
			zoneAt[s.Zone] = i
			zones = append(zones, s.Zone)
		}
	}
	if len(zones) > 0 && len(errs) == 0 {
		if err := a.zoneRefusal(r.Context(), rem, fmt.Sprintf("subscribers[%d].zone", zoneAt[zones[0]])); err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		if len(errs) > 20 {
			errs = append(errs[:20], FieldError{Field: "subscribers", Message: fmt.Sprintf("and %d more errors", len(errs)-20)})
		}
		return problem(http.StatusUnprocessableEntity, "some subscribers are not valid; none were stored", errs...)
	}
	if err := a.zoneLocations(r.Context(), rem, zones, pl); err != nil {
		return err
	}
	subs := make([]store.Subscription, 0, len(entries))
	pos := make(map[string]int, len(entries))
	now := a.cfg.Now()
	for i, s := range entries {
		sub := store.Subscription{ReminderID: rem.ID, UserID: s.UserID, LocationID: pl.byName[names[i]], GroupNo: grouping.Bucket(s.UserID), CreatedAt: now}
		if j, dup := pos[s.UserID]; dup {
			subs[j] = sub // the last entry for a user wins
			continue
		}
		pos[s.UserID] = len(subs)
		subs = append(subs, sub)
	}
	if err := a.subscribe(r.Context(), rem, subs, pl); err != nil {
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
