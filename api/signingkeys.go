package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/chime-dev/chime/signing"
)

// DefaultTokenTTL is how long the tokens POST /v1/users/{user_id}/token
// issues are valid.
const DefaultTokenTTL = time.Hour

// SigningKeys are the apps' keys for gateway client tokens.
type SigningKeys interface {
	Current(ctx context.Context, app int64, now time.Time) (signing.Key, error)
	Rotate(ctx context.Context, app int64, overlap *time.Duration, now time.Time) (signing.Key, error)
	List(ctx context.Context, app int64, now time.Time) ([]signing.Key, error)
}

var _ SigningKeys = (*signing.Keys)(nil)

// signingProblem turns the errors of signing keys that callers can act on
// into problems.
func signingProblem(err error) error {
	switch {
	case errors.Is(err, signing.ErrNoKeyring):
		return problem(http.StatusServiceUnavailable, "signing keys are unavailable on this server: CHIME_SECRET_KEYS is not set on this coordinator")
	case errors.Is(err, signing.ErrTooManyKeys):
		return problem(http.StatusConflict, fmt.Sprintf("the app already has %d signing keys in force (the current one and those within their overlap); "+
			"wait until the oldest expires, or rotate with \"overlap\": \"0s\", which ends every other key now", signing.MaxInForce))
	}
	return err
}

// listSigningKeys lists the app's keys in force, without secrets.
func (a *API) listSigningKeys(w http.ResponseWriter, r *http.Request, app int64) error {
	keys, err := a.cfg.SigningKeys.List(r.Context(), app, a.cfg.Now())
	if err != nil {
		return err
	}
	if keys == nil {
		keys = []signing.Key{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
	return nil
}

// rotateSigningKey makes the app a new current key and answers with its
// secret, the one time it is shown; the app's other keys expire after the
// overlap.
func (a *API) rotateSigningKey(w http.ResponseWriter, r *http.Request, app int64) error {
	var in struct {
		Overlap *string `json:"overlap"`
	}
	if r.ContentLength != 0 {
		if p := decode(w, r, 1<<10, &in); p != nil {
			return p
		}
	}
	var overlap *time.Duration
	if in.Overlap != nil {
		d, err := time.ParseDuration(*in.Overlap)
		if err != nil {
			return problem(http.StatusUnprocessableEntity, "the overlap is not valid",
				FieldError{Field: "overlap", Message: "must be a duration such as \"1h\" or \"0s\""})
		}
		overlap = &d
	}
	key, err := a.cfg.SigningKeys.Rotate(r.Context(), app, overlap, a.cfg.Now())
	if errors.Is(err, signing.ErrOverlap) {
		return problem(http.StatusUnprocessableEntity, "the overlap is out of bounds", FieldError{Field: "overlap", Message: err.Error()})
	}
	if err != nil {
		return signingProblem(err)
	}
	writeJSON(w, http.StatusCreated, key)
	return nil
}
