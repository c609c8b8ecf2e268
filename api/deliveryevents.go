package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"github.com/chime-dev/chime/deliveryevent"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/signature"
	"github.com/chime-dev/chime/store"
)

// DeliveryEventEndpoint is the JSON form of an app's delivery events
// endpoint. Secret is in the answer to a PUT that generated it, the one time
// it is shown.
type DeliveryEventEndpoint struct {
	URL       string    `json:"url"`
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// DeliveryEventEndpointInput registers an endpoint. Without a secret Chime
// generates one.
type DeliveryEventEndpointInput struct {
	URL    string `json:"url"`
	Secret string `json:"secret,omitempty"`
}

// endpointURLProblem says what is wrong with a delivery events endpoint
// URL, or "" if nothing is: the same rules as web device endpoints (the
// workers dial it, so it may not name the operator's network; the dialer
// checks again every address a name resolves to).
func endpointURLProblem(raw string, a *API) string {
	u, err := url.Parse(raw)
	switch {
	case len(raw) > maxEndpointLen || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Hostname() == "":
		return fmt.Sprintf("must be an absolute http or https URL of at most %d bytes", maxEndpointLen)
	case u.User != nil:
		return "must not contain a user name or password"
	}
	host := u.Hostname()
	if addr, err := netip.ParseAddr(host); err == nil {
		if !a.cfg.WebDeviceGuard.Allowed(addr) {
			return "the address " + host + " is not allowed: endpoints must have a public address (not loopback, private, link-local, multicast or reserved)"
		}
		return ""
	}
	if numericHost(host) {
		return "the host must be a name or an IP address in standard form"
	}
	return ""
}

func (a *API) putDeliveryEventEndpoint(w http.ResponseWriter, r *http.Request, app int64) error {
	var in DeliveryEventEndpointInput
	if p := decode(w, r, 8<<10, &in); p != nil {
		return p
	}
	var errs []FieldError
	if msg := endpointURLProblem(in.URL, a); msg != "" {
		errs = append(errs, FieldError{Field: "url", Message: msg})
	}
	generated := in.Secret == ""
	if generated {
		in.Secret = signature.NewSecret()
	} else if _, err := signature.ParseSecret(in.Secret); err != nil {
		errs = append(errs, FieldError{Field: "secret", Message: err.Error()})
	}
	if len(errs) > 0 {
		return problem(http.StatusUnprocessableEntity, "the delivery events endpoint is not valid", errs...)
	}
	sealed, err := a.cfg.Keyring.Seal([]byte(in.Secret), store.DeliveryEventSecretAAD(app))
	if errors.Is(err, seal.ErrNoKeys) {
		return problem(http.StatusServiceUnavailable, "delivery events endpoints cannot be registered: their signing secrets are stored encrypted, and no CHIME_SECRET_KEYS are configured on this coordinator")
	}
	if err != nil {
		return fmt.Errorf("seal endpoint secret: %w", err)
	}
	replaced, err := store.PutDeliveryEventEndpoint(r.Context(), a.db, store.DeliveryEventEndpoint{AppID: app, URL: in.URL, Secret: sealed})
	if err != nil {
		return err
	}
	e, err := store.FindDeliveryEventEndpoint(r.Context(), a.db, app)
	if err != nil {
		return err
	}
	out := deliveryEventEndpointJSON(e)
	if generated {
		out.Secret = in.Secret
	}
	status := http.StatusCreated
	if replaced {
		status = http.StatusOK
	}
	writeJSON(w, status, out)
	return nil
}

func deliveryEventEndpointJSON(e store.DeliveryEventEndpoint) DeliveryEventEndpoint {
	return DeliveryEventEndpoint{URL: e.URL, CreatedAt: e.CreatedAt.UTC(), UpdatedAt: e.UpdatedAt.UTC()}
}

func (a *API) getDeliveryEventEndpoint(w http.ResponseWriter, r *http.Request, app int64) error {
	e, err := store.FindDeliveryEventEndpoint(r.Context(), a.db, app)
	if errors.Is(err, store.ErrNotFound) {
		return problem(http.StatusNotFound, "the app has no delivery events endpoint")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deliveryEventEndpointJSON(e))
	return nil
}

func (a *API) deleteDeliveryEventEndpoint(w http.ResponseWriter, r *http.Request, app int64) error {
	return deleted(w, store.DeleteDeliveryEventEndpoint(r.Context(), a.db, app), "the app has no delivery events endpoint")
}

// OpensInput reports users who opened an occurrence's message.
type OpensInput struct {
	UserIDs []string `json:"user_ids"`
}

// postOpens counts opens the app reports, each user once per occurrence,
// and answers with how many were first opens.
func (a *API) postOpens(w http.ResponseWriter, r *http.Request, app int64) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return problem(http.StatusNotFound, fmt.Sprintf("no occurrence %q", r.PathValue("id")))
	}
	var in OpensInput
	if p := decode(w, r, 512<<10, &in); p != nil {
		return p
	}
	if len(in.UserIDs) == 0 || len(in.UserIDs) > deliveryevent.MaxOpens {
		msg := fmt.Sprintf("1 to %d user IDs", deliveryevent.MaxOpens)
		return problem(http.StatusUnprocessableEntity, "user_ids must hold "+msg, FieldError{Field: "user_ids", Message: msg})
	}
	for i, u := range in.UserIDs {
		if msg := validUserID(u); msg != "" {
			return problem(http.StatusUnprocessableEntity, "a user ID is not valid", FieldError{Field: fmt.Sprintf("user_ids[%d]", i), Message: msg})
		}
	}
	occ, err := store.FindOccurrence(r.Context(), a.db, app, id)
	if errors.Is(err, store.ErrNotFound) {
		return problem(http.StatusNotFound, fmt.Sprintf("no occurrence %d", id))
	}
	if err != nil {
		return err
	}
	n, err := a.cfg.Opens.Record(r.Context(), app, occ, in.UserIDs, a.cfg.Now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"counted": n})
	return nil
}
