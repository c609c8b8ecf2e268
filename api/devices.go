package api

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/language"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/netguard"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/sender/webhook"
	"github.com/chime-dev/chime/store"
)

// Device is the JSON form of a user's registered device. The signing
// secret of a web device is never returned.
type Device struct {
	UserID         string     `json:"user_id"`
	DeviceID       string     `json:"device_id"`
	Platform       string     `json:"platform"`
	Token          string     `json:"token"`
	Locale         string     `json:"locale,omitempty"`
	AppVersion     string     `json:"app_version,omitempty"`
	Enabled        bool       `json:"enabled"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

func deviceJSON(d store.Device) Device {
	out := Device{UserID: d.UserID, DeviceID: d.DeviceID, Platform: d.Platform, Token: d.Token, Locale: d.Locale,
		AppVersion: d.AppVersion, Enabled: d.DisabledAt == nil, DisabledReason: d.DisabledReason,
		CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC()}
	if d.DisabledAt != nil {
		t := d.DisabledAt.UTC()
		out.DisabledAt = &t
	}
	return out
}

// DeviceInput is the body of PUT /v1/users/{user_id}/devices/{device_id}.
type DeviceInput struct {
	Platform   string `json:"platform"`
	Token      string `json:"token"`
	Locale     string `json:"locale,omitempty"`
	AppVersion string `json:"app_version,omitempty"`
	Secret     string `json:"secret,omitempty"`
}

// maxEndpointLen bounds a web device's endpoint URL.
const maxEndpointLen = 2048

// validate checks a device registration whole and returns every problem;
// guard decides which addresses a web endpoint may name.
func (in *DeviceInput) validate(guard *netguard.Policy) []FieldError {
	var errs []FieldError
	bad := func(field, msg string) { errs = append(errs, FieldError{Field: field, Message: msg}) }
	switch in.Platform {
	case store.PlatformIOS:
		if raw, err := hex.DecodeString(in.Token); err != nil || len(raw) < 32 || len(raw) > 100 {
			bad("token", "an ios token is the APNs device token: 64 to 200 hex digits")
		}
	case store.PlatformAndroid:
		if in.Token == "" || len(in.Token) > 4096 || strings.IndexFunc(in.Token, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			bad("token", "an android token is the FCM registration token: 1 to 4096 bytes without spaces")
		}
	case store.PlatformWeb:
		if msg := endpointProblem(in.Token, guard); msg != "" {
			bad("token", msg)
		}
		if _, err := webhook.ParseSecret(in.Secret); err != nil {
			bad("secret", "a web device needs its endpoint's signing secret: "+err.Error())
		}
	default:
		bad("platform", "must be ios, android or web")
	}
	if in.Platform != store.PlatformWeb && in.Secret != "" {
		bad("secret", "only web devices have a signing secret")
	}
	if in.Locale != "" {
		if _, err := language.Parse(in.Locale); err != nil || len(in.Locale) > 35 {
			bad("locale", "must be a BCP 47 language tag such as en-US or ar")
		}
	}
	if len(in.AppVersion) > 50 || strings.IndexFunc(in.AppVersion, unicode.IsControl) >= 0 {
		bad("app_version", "must be at most 50 bytes without control characters")
	}
	return errs
}

// endpointProblem says what is wrong with a web device's endpoint URL, or
// "" if nothing is. Endpoints are the tenant's and the workers post to
// them, so they may not name the operator's network: an IP address must be
// one guard allows (the workers check every address they dial again, which
// also covers names that resolve to such addresses), and numbers that
// resolvers read as IPv4 addresses in other forms (http://2130706433/,
// http://0x7f.1/) are refused outright.
func endpointProblem(raw string, guard *netguard.Policy) string {
	u, err := url.Parse(raw)
	switch {
	case len(raw) > maxEndpointLen || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Hostname() == "":
		return fmt.Sprintf("a web token is the device's webhook endpoint: an absolute http or https URL of at most %d bytes", maxEndpointLen)
	case u.User != nil:
		return "the endpoint URL must not contain a user name or password"
	}
	host := u.Hostname()
	if addr, err := netip.ParseAddr(host); err == nil {
		if !guard.Allowed(addr) {
			return "the endpoint's address " + host + " is not allowed: web device endpoints must have a public address (not loopback, private, link-local, multicast or reserved)"
		}
		return ""
	}
	if numericHost(host) {
		return "the endpoint's host must be a name or an IP address in standard form"
	}
	return ""
}

// numericHost tells whether host ends in a number (decimal, or hex after
// 0x), which URL parsers and resolvers take for an IPv4 address.
func numericHost(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if h, ok := strings.CutPrefix(strings.ToLower(last), "0x"); ok {
		return strings.Trim(h, "0123456789abcdef") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}

// deviceIDs validates the path's user and device IDs.
func deviceIDs(r *http.Request) (string, string, *Problem) {
	user, dev := r.PathValue("user_id"), r.PathValue("device_id")
	if msg := validUserID(user); msg != "" {
		return "", "", problem(http.StatusUnprocessableEntity, "user_id "+msg)
	}
	if msg := validUserID(dev); msg != "" {
		return "", "", problem(http.StatusUnprocessableEntity, "device_id "+msg)
	}
	return user, dev, nil
}

func (a *API) putDevice(w http.ResponseWriter, r *http.Request, app int64) error {
	user, devID, p := deviceIDs(r)
	if p != nil {
		return p
	}
	var in DeviceInput
	if p := decode(w, r, 64<<10, &in); p != nil {
		return p
	}
	if errs := in.validate(a.cfg.WebDeviceGuard); len(errs) > 0 {
		return problem(http.StatusUnprocessableEntity, "the device is not valid", errs...)
	}
	// The signing secret is stored sealed, bound to the device's row.
	secret := ""
	if in.Secret != "" {
		var err error
		secret, err = a.cfg.Keyring.Seal([]byte(in.Secret), store.DeviceSecretAAD(app, user, devID))
		if errors.Is(err, seal.ErrNoKeys) {
			return problem(http.StatusServiceUnavailable, "web devices cannot be registered: their signing secrets are stored encrypted, and no CHIME_SECRET_KEYS are configured on this coordinator")
		}
		if err != nil {
			return fmt.Errorf("seal device secret: %w", err)
		}
	}
	var d store.Device
	created := false
	err := store.Transaction(r.Context(), a.db, func(tx *gorm.DB) error {
		created = false
		err := tx.Where("app_id = ? AND user_id = ? AND device_id = ?", app, user, devID).First(&d).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			created = true
			d = store.Device{AppID: app, UserID: user, DeviceID: devID}
		} else if err != nil {
			return err
		}
		d.Platform, d.Token, d.Secret, d.Locale, d.AppVersion = in.Platform, in.Token, secret, in.Locale, in.AppVersion
		// Registering again enables a device a provider had refused.
		d.DisabledAt, d.DisabledReason = nil, ""
		return tx.Save(&d).Error
	})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, deviceJSON(d))
	return nil
}

func (a *API) deleteDevice(w http.ResponseWriter, r *http.Request, app int64) error {
	user, devID := r.PathValue("user_id"), r.PathValue("device_id")
	res := a.db.WithContext(r.Context()).Where("app_id = ? AND user_id = ? AND device_id = ?", app, user, devID).Delete(&store.Device{})
	return deleted(w, res, fmt.Sprintf("user %q has no device %q", user, devID))
}

// deleted answers a delete of one row: 204 No Content if res removed it,
// 404 with notFound as the detail if there was none.
func deleted(w http.ResponseWriter, res *gorm.DB, notFound string) error {
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return problem(http.StatusNotFound, notFound)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request, app int64) error {
	var rows []store.Device
	err := a.db.WithContext(r.Context()).Where("app_id = ? AND user_id = ?", app, r.PathValue("user_id")).
		Order("device_id").Limit(1000).Find(&rows).Error
	if err != nil {
		return err
	}
	out := struct {
		Devices []Device `json:"devices"`
	}{Devices: make([]Device, len(rows))}
	for i, d := range rows {
		out.Devices[i] = deviceJSON(d)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
