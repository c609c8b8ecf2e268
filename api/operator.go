package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/chime-dev/chime/store"
)

// The operator routes create apps and list, create and revoke their keys.
// They take the operator key (Config.OperatorKey, CHIME_OPERATOR_KEY), which
// is no app's key and reaches every app; app keys reach only their own
// app's resources and never these routes.

// App is an app as the operator routes show it.
type App struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// Key states.
const (
	KeyActive  = "active"  // works (until expires_at, if set)
	KeyExpired = "expired" // revoked with a grace period that has passed
	KeyRevoked = "revoked"
)

// APIKey is one of an app's keys, without the key itself: only its prefix
// is kept in the clear.
type APIKey struct {
	ID         int64      `json:"id"`
	AppID      int64      `json:"app_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	State      string     `json:"state"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// NewAPIKey is a key just created: the only answer that holds the key.
type NewAPIKey struct {
	App    *App   `json:"app,omitempty"` // when the app was created with it
	Key    APIKey `json:"key"`
	Secret string `json:"api_key"`
}

// RenderKey returns k as the operator routes show it at now.
func RenderKey(k store.APIKey, now time.Time) APIKey {
	state := KeyActive
	switch {
	case k.RevokedAt != nil:
		state = KeyRevoked
	case !k.Active(now):
		state = KeyExpired
	}
	return APIKey{
		ID: k.ID, AppID: k.AppID, Name: k.Name, Prefix: k.Prefix, State: state, CreatedAt: k.CreatedAt,
		LastUsedAt: k.LastUsedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt,
	}
}

func renderApp(a store.App) App { return App{ID: a.ID, Name: a.Name, CreatedAt: a.CreatedAt} }

// operatorAuth checks the operator key and turns returned errors into
// problem documents. Without a configured operator key every operator route
// answers 503: nothing could authenticate.
func (a *API) operatorAuth(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noStore(w)
		if a.operator == nil {
			writeProblem(w, problem(http.StatusServiceUnavailable, "the operator routes are off: set CHIME_OPERATOR_KEY on the coordinator"))
			return
		}
		token, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="chime-operator"`)
			writeProblem(w, problem(http.StatusUnauthorized, "an Authorization: Bearer <operator key> header is required"))
			return
		}
		// Hashing first gives equal lengths, so the comparison's time says
		// nothing about the key.
		sum := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(sum[:], a.operator) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="chime-operator", error="invalid_token"`)
			writeProblem(w, problem(http.StatusUnauthorized, "the operator key is not valid"))
			return
		}
		a.answer(w, r, h(w, r))
	})
}

func (a *API) listApps(w http.ResponseWriter, r *http.Request) error {
	limit, p := intParam(r, "limit", 100, 1, 1000)
	if p != nil {
		return p
	}
	after, p := idParam(r, "after")
	if p != nil {
		return p
	}
	apps, err := store.Apps(r.Context(), a.db, after, limit)
	if err != nil {
		return err
	}
	out := struct {
		Apps []App  `json:"apps"`
		Next string `json:"next,omitempty"`
	}{Apps: []App{}}
	for _, app := range apps {
		out.Apps = append(out.Apps, renderApp(app))
	}
	if len(apps) == limit {
		out.Next = strconv.FormatInt(apps[len(apps)-1].ID, 10)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type appInput struct {
	Name    string `json:"name"`
	KeyName string `json:"key_name"`
}

func (a *API) createApp(w http.ResponseWriter, r *http.Request) error {
	var in appInput
	if p := decode(w, r, 64<<10, &in); p != nil {
		return p
	}
	var errs []FieldError
	if in.Name == "" {
		errs = append(errs, FieldError{Field: "name", Message: "is required"})
	} else if err := store.CheckName(in.Name); err != nil {
		errs = append(errs, FieldError{Field: "name", Message: err.Error()})
	}
	if err := store.CheckName(in.KeyName); err != nil {
		errs = append(errs, FieldError{Field: "key_name", Message: err.Error()})
	}
	if len(errs) > 0 {
		return problem(http.StatusUnprocessableEntity, "the app is not valid; nothing was stored", errs...)
	}
	app, k, key, err := store.CreateApp(r.Context(), a.db, in.Name, in.KeyName)
	if err != nil {
		return err
	}
	out := renderApp(app)
	writeJSON(w, http.StatusCreated, NewAPIKey{App: &out, Key: RenderKey(k, a.cfg.Now()), Secret: key})
	return nil
}

// pathApp returns the app of the {app} path value.
func (a *API) pathApp(r *http.Request) (store.App, error) {
	id, err := strconv.ParseInt(r.PathValue("app"), 10, 64)
	if err != nil || id < 1 {
		return store.App{}, problem(http.StatusNotFound, fmt.Sprintf("no app %q", r.PathValue("app")))
	}
	app, err := store.FindApp(r.Context(), a.db, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.App{}, problem(http.StatusNotFound, fmt.Sprintf("no app %d", id))
	}
	return app, err
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) error {
	app, err := a.pathApp(r)
	if err != nil {
		return err
	}
	limit, p := intParam(r, "limit", 100, 1, 1000)
	if p != nil {
		return p
	}
	after, p := idParam(r, "after")
	if p != nil {
		return p
	}
	keys, err := store.Keys(r.Context(), a.db, app.ID, after, limit)
	if err != nil {
		return err
	}
	out := struct {
		Keys []APIKey `json:"keys"`
		Next string   `json:"next,omitempty"`
	}{Keys: []APIKey{}}
	now := a.cfg.Now()
	for _, k := range keys {
		out.Keys = append(out.Keys, RenderKey(k, now))
	}
	if len(keys) == limit {
		out.Next = strconv.FormatInt(keys[len(keys)-1].ID, 10)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type keyInput struct {
	Name string `json:"name"`
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request) error {
	app, err := a.pathApp(r)
	if err != nil {
		return err
	}
	var in keyInput
	// The body is optional: a key needs no name.
	if r.ContentLength != 0 {
		if p := decode(w, r, 64<<10, &in); p != nil {
			return p
		}
	}
	if err := store.CheckName(in.Name); err != nil {
		return problem(http.StatusUnprocessableEntity, "the key is not valid; nothing was stored", FieldError{Field: "name", Message: err.Error()})
	}
	now := a.cfg.Now()
	k, key, err := store.CreateKey(r.Context(), a.db, app.ID, in.Name, now)
	if errors.Is(err, store.ErrTooManyKeys) {
		return problem(http.StatusConflict, fmt.Sprintf("app %d has %d active keys, the most allowed; revoke one first", app.ID, store.MaxActiveKeys))
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, NewAPIKey{Key: RenderKey(k, now), Secret: key})
	return nil
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) error {
	app, err := a.pathApp(r)
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(r.PathValue("key_id"), 10, 64)
	if err != nil || id < 1 {
		return problem(http.StatusNotFound, fmt.Sprintf("app %d has no key %q", app.ID, r.PathValue("key_id")))
	}
	var grace time.Duration
	if s := r.URL.Query().Get("grace"); s != "" {
		grace, err = time.ParseDuration(s)
		if err != nil || grace < 0 || grace > store.MaxKeyGrace {
			return problem(http.StatusBadRequest, fmt.Sprintf(`query parameter grace must be a duration from 0s to %s, such as "1h"`, fmtHours(store.MaxKeyGrace)))
		}
	}
	now := a.cfg.Now()
	k, err := store.RevokeKey(r.Context(), a.db, app.ID, id, now, grace)
	if errors.Is(err, store.ErrNotFound) {
		return problem(http.StatusNotFound, fmt.Sprintf("app %d has no key %d", app.ID, id))
	}
	if err != nil {
		return err
	}
	// Announced again when the key was revoked already: a retry after a
	// failed announcement reaches the replicas.
	if err := a.cfg.Keys.Revoked(r.Context(), k.Hash); err != nil {
		return fmt.Errorf("key %d is revoked, but other replicas may accept it until their cache expires: %w", k.ID, err)
	}
	writeJSON(w, http.StatusOK, RenderKey(k, now))
	return nil
}

// idParam reads an optional positive integer query parameter (a cursor).
func idParam(r *http.Request, name string) (int64, *Problem) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, problem(http.StatusBadRequest, fmt.Sprintf("query parameter %s must be a positive integer (a next cursor)", name))
	}
	return n, nil
}

func fmtHours(d time.Duration) string { return strconv.FormatInt(int64(d/time.Hour), 10) + "h" }
