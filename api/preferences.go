package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/chime-dev/chime/policy"
	"github.com/chime-dev/chime/store"
)

// fieldErrors are policy's field errors as the API's.
func fieldErrors(in []policy.FieldError) []FieldError {
	out := make([]FieldError, len(in))
	for i, e := range in {
		out[i] = FieldError{Field: e.Field, Message: e.Message}
	}
	return out
}

// getPreferences answers a user's preferences; a user who set none has the
// empty ones.
func (a *API) getPreferences(w http.ResponseWriter, r *http.Request, app int64) error {
	user := r.PathValue("user_id")
	if msg := validUserID(user); msg != "" {
		return problem(http.StatusUnprocessableEntity, "user_id "+msg)
	}
	var out policy.Preferences
	row, err := store.Preferences(r.Context(), a.db, app, user)
	switch {
	case errors.Is(err, store.ErrNotFound):
		out, _ = policy.Preferences{}.Check()
	case err != nil:
		return err
	default:
		if err := json.Unmarshal([]byte(row.Doc), &out); err != nil {
			return fmt.Errorf("decode preferences: %w", err)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// putPreferences replaces a user's preferences: MySQL first, then the
// Redis mirror the workers read.
func (a *API) putPreferences(w http.ResponseWriter, r *http.Request, app int64) error {
	user := r.PathValue("user_id")
	if msg := validUserID(user); msg != "" {
		return problem(http.StatusUnprocessableEntity, "user_id "+msg)
	}
	var in policy.Preferences
	if p := decode(w, r, 64<<10, &in); p != nil {
		return p
	}
	out, errs := in.Check()
	if len(errs) > 0 {
		return problem(http.StatusUnprocessableEntity, "the preferences are not valid", fieldErrors(errs)...)
	}
	doc, err := json.Marshal(out)
	if err != nil {
		return err
	}
	if err := store.PutPreferences(r.Context(), a.db, store.UserPreference{AppID: app, UserID: user,
		Shard: policy.Shard(app, user), Doc: string(doc)}); err != nil {
		return err
	}
	if err := a.cfg.Policy.Mirror(r.Context(), app, user, string(doc)); err != nil {
		return err // stored; the same request again brings the mirror up to date
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getDeliverySettings answers the app's delivery defaults.
func (a *API) getDeliverySettings(w http.ResponseWriter, r *http.Request, app int64) error {
	doc, err := store.AppDeliverySettings(r.Context(), a.db, app)
	if err != nil {
		return err
	}
	out, _ := policy.Settings{}.Check()
	if doc != "" {
		if err := json.Unmarshal([]byte(doc), &out); err != nil {
			return fmt.Errorf("decode delivery settings: %w", err)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// putDeliverySettings replaces the app's delivery defaults; occurrences
// take them when they fire.
func (a *API) putDeliverySettings(w http.ResponseWriter, r *http.Request, app int64) error {
	var in policy.Settings
	if p := decode(w, r, 64<<10, &in); p != nil {
		return p
	}
	out, errs := in.Check()
	if len(errs) > 0 {
		return problem(http.StatusUnprocessableEntity, "the delivery settings are not valid", fieldErrors(errs)...)
	}
	doc, err := json.Marshal(out)
	if err != nil {
		return err
	}
	if err := store.PutDeliverySettings(r.Context(), a.db, app, string(doc)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
