package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/chime-dev/chime/store"
)

// ChannelCounts is what one channel did for an occurrence (or one group of
// it): devices sent, failed and expired, and, on channel "none", users
// skipped for having no enabled device.
type ChannelCounts struct {
	Channel string `json:"channel"`
	Sent    int64  `json:"sent"`
	Failed  int64  `json:"failed"`
	Expired int64  `json:"expired"`
	Skipped int64  `json:"skipped"`
}

// DeliveryFailure is one device of an occurrence that was not sent to.
type DeliveryFailure struct {
	UserID   string    `json:"user_id"`
	DeviceID string    `json:"device_id"`
	Group    int       `json:"group"`
	Channel  string    `json:"channel"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// findOccurrence returns the ID of the app's occurrence named in the path.
func (a *API) findOccurrence(r *http.Request, app int64) (int64, error) {
	raw := r.PathValue("id")
	id, err := strconv.ParseInt(raw, 10, 64)
	notFound := problem(http.StatusNotFound, fmt.Sprintf("no occurrence %q", raw))
	if err != nil || id <= 0 {
		return 0, notFound
	}
	err = store.CheckOccurrence(r.Context(), a.db, app, id)
	if errors.Is(err, store.ErrNotFound) {
		return 0, notFound
	}
	if err != nil {
		return 0, err
	}
	return id, nil
}

func (a *API) occurrenceChannels(w http.ResponseWriter, r *http.Request, app int64) error {
	id, err := a.findOccurrence(r, app)
	if err != nil {
		return err
	}
	out := struct {
		Occurrence int64           `json:"occurrence"`
		Group      *int            `json:"group,omitempty"`
		Channels   []ChannelCounts `json:"channels"`
	}{Occurrence: id, Channels: []ChannelCounts{}}
	if g := r.URL.Query().Get("group"); g != "" {
		n, err := strconv.Atoi(g)
		if err != nil || n < 0 || n > 65535 {
			return problem(http.StatusBadRequest, "query parameter group must be an integer from 0 to 65535")
		}
		out.Group = &n
	}
	rows, err := store.ChannelCounts(r.Context(), a.db, id, out.Group)
	if err != nil {
		return err
	}
	for _, c := range rows {
		out.Channels = append(out.Channels, ChannelCounts{Channel: c.Channel, Sent: c.Sent, Failed: c.Failed, Expired: c.Expired, Skipped: c.Skipped})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// failureCursor is where a page of failures ends: the last (user, device).
type failureCursor struct {
	User   string `json:"u"`
	Device string `json:"d"`
}

func (a *API) occurrenceFailures(w http.ResponseWriter, r *http.Request, app int64) error {
	limit, p := intParam(r, "limit", 100, 1, 1000)
	if p != nil {
		return p
	}
	var after *failureCursor
	if s := r.URL.Query().Get("after"); s != "" {
		raw, err := base64.RawURLEncoding.DecodeString(s)
		after = &failureCursor{}
		if err != nil || json.Unmarshal(raw, after) != nil {
			return problem(http.StatusBadRequest, "query parameter after must be the next value of a previous page")
		}
	}
	id, err := a.findOccurrence(r, app)
	if err != nil {
		return err
	}
	var from *store.DeliveryFailure
	if after != nil {
		from = &store.DeliveryFailure{UserID: after.User, DeviceID: after.Device}
	}
	rows, err := store.DeliveryFailures(r.Context(), a.db, id, from, limit+1)
	if err != nil {
		return err
	}
	out := struct {
		Failures []DeliveryFailure `json:"failures"`
		Next     string            `json:"next,omitempty"`
	}{Failures: []DeliveryFailure{}}
	if len(rows) > limit {
		rows = rows[:limit]
		last := rows[limit-1]
		raw, _ := json.Marshal(failureCursor{User: last.UserID, Device: last.DeviceID})
		out.Next = base64.RawURLEncoding.EncodeToString(raw)
	}
	for _, f := range rows {
		out.Failures = append(out.Failures, DeliveryFailure{UserID: f.UserID, DeviceID: f.DeviceID, Group: f.GroupNo,
			Channel: f.Channel, Reason: f.Reason, At: f.CreatedAt.UTC()})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
