package api

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/chime-dev/chime/store"
)

// Actor is who makes a change: an API key (Kind store.ActorKey, ID the
// key's ID) or a console user (store.ActorConsole, ID the email).
type Actor struct {
	Kind, ID string
}

type actorKey struct{}

// caller is the app and actor a request was made for in-process (As).
type caller struct {
	app   int64
	actor Actor
}

// As returns the API's routes served for app and actor without a bearer
// key: the console calls them in-process for its signed-in user, so that a
// change made in a browser is validated, stored, announced and audited by
// the same code as one made with a key.
func (a *API) As(app int64, actor Actor) http.Handler {
	a.routesOnce.Do(func() { a.routes = a.Handler() })
	h := a.routes
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), actorKey{}, caller{app: app, actor: actor})))
	})
}

func withActor(r *http.Request, actor Actor) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), actorKey{}, caller{actor: actor}))
}

func actorOf(ctx context.Context) Actor {
	c, _ := ctx.Value(actorKey{}).(caller)
	return c.actor
}

// AuditEntry is the JSON form of one audited change.
type AuditEntry struct {
	ID        int64                      `json:"id"`
	Actor     Actor                      `json:"actor"`
	Action    string                     `json:"action"`
	Resource  string                     `json:"resource"`
	Diff      map[string]json.RawMessage `json:"diff,omitempty"`
	CreatedAt time.Time                  `json:"created_at"`
}

// MarshalJSON names the actor's fields in lower case.
func (a Actor) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Kind string `json:"kind"`
		ID   string `json:"id"`
	}{a.Kind, a.ID})
}

// audited records a successful change made by h in the audit log. A route
// with a {key} is a reminder's: the entry then holds a diff of the
// reminder's fields before and after. The entry is written after the
// change commits; should that write fail, the change stands and the failure
// is logged.
func (a *API) audited(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, app int64) error {
		if r.URL.Query().Get("dry_run") == "true" {
			return h(w, r, app) // checks, changes nothing
		}
		before := a.snapshot(r, app)
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		if err := h(sw, r, app); err != nil || sw.status >= 300 {
			return err
		}
		after := a.snapshot(r, app)
		actor := actorOf(r.Context())
		e := store.AuditEntry{
			AppID: app, ActorKind: actor.Kind, ActorID: actor.ID, Action: r.Pattern, Resource: r.URL.Path,
			Diff: diff(before, after), CreatedAt: a.cfg.Now(),
		}
		if err := store.RecordAudit(context.WithoutCancel(r.Context()), a.db, e); err != nil {
			a.log.Error("record audit entry; the change stands", "action", e.Action, "resource", e.Resource, "err", err)
		}
		return nil
	}
}

// snapshot is what a change at r is made to, as the API shows it: the
// reminder of its {key}, else the location of its {location}; nil when
// there is none (yet, or any more).
func (a *API) snapshot(r *http.Request, app int64) any {
	if key := r.PathValue("key"); key != "" {
		if rem, err := a.loadReminder(r, app, key); err == nil {
			return rem
		}
		return nil
	}
	if name := r.PathValue("location"); name != "" {
		if l, err := store.FindLocation(r.Context(), a.db, app, name); err == nil {
			return locationOf(l)
		}
	}
	return nil
}

// diff is a JSON object of the fields that differ between before and
// after (either may be nil: created or deleted), each {"before", "after"}.
func diff(before, after any) string {
	if before == nil && after == nil {
		return ""
	}
	fields := func(v any) map[string]any {
		m := map[string]any{}
		if v == nil {
			return m
		}
		raw, _ := json.Marshal(v)
		_ = json.Unmarshal(raw, &m)
		delete(m, "updated_at")
		delete(m, "created_at")
		return m
	}
	b, af := fields(before), fields(after)
	out := map[string]map[string]any{}
	for k, v := range b {
		if !reflect.DeepEqual(v, af[k]) {
			out[k] = map[string]any{"before": v, "after": af[k]}
		}
	}
	for k, v := range af {
		if _, ok := b[k]; !ok {
			out[k] = map[string]any{"before": nil, "after": v}
		}
	}
	raw, _ := json.Marshal(out)
	return string(raw)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// listAudit lists the app's audit log, newest first.
func (a *API) listAudit(w http.ResponseWriter, r *http.Request, app int64) error {
	limit, p := intParam(r, "limit", 100, 1, 1000)
	if p != nil {
		return p
	}
	var before int64
	if s := r.URL.Query().Get("before"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return problem(http.StatusBadRequest, "query parameter before must be an audit entry ID, a positive integer")
		}
		before = n
	}
	rows, err := store.Audit(r.Context(), a.db, app, before, limit)
	if err != nil {
		return err
	}
	out := struct {
		Entries []AuditEntry `json:"entries"`
		Next    string       `json:"next,omitempty"`
	}{Entries: AuditEntries(rows)}
	if len(rows) == limit {
		out.Next = strconv.FormatInt(rows[len(rows)-1].ID, 10)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// AuditEntries is the JSON form of stored entries.
func AuditEntries(rows []store.AuditEntry) []AuditEntry {
	out := make([]AuditEntry, len(rows))
	for i, e := range rows {
		out[i] = AuditEntry{ID: e.ID, Actor: Actor{Kind: e.ActorKind, ID: e.ActorID}, Action: e.Action, Resource: e.Resource, CreatedAt: e.CreatedAt.UTC()}
		if e.Diff != "" {
			_ = json.Unmarshal([]byte(e.Diff), &out[i].Diff)
		}
	}
	return out
}
