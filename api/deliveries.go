package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"gorm.io/gorm"

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
	var n int64
	err = a.db.WithContext(r.Context()).Table("occurrences AS o").Joins("JOIN reminders r ON r.id = o.reminder_id").
		Where("o.id = ? AND r.app_id = ?", id, app).Count(&n).Error
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, notFound
	}
	return id, nil
}

func (a *API) occurrenceChannels(w http.ResponseWriter, r *http.Request, app int64) error {
	id, err := a.findOccurrence(r, app)
	if err != nil {
		return err
	}
	q := a.db.WithContext(r.Context()).Model(&store.DeliveryCount{}).
		Select("channel, SUM(sent) AS sent, SUM(failed) AS failed, SUM(expired) AS expired, SUM(skipped) AS skipped").
		Where("occurrence_id = ?", id)
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
		q = q.Where("group_no = ?", n)
		out.Group = &n
	}
	if err := q.Group("channel").Order("channel").Scan(&out.Channels).Error; err != nil {
		return err
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
	q := a.db.WithContext(r.Context()).Where("occurrence_id = ?", id)
	if after != nil {
		q = q.Where("user_id > ? OR (user_id = ? AND device_id > ?)", after.User, after.User, after.Device)
	}
	var rows []store.DeliveryFailure
	if err := q.Order("user_id, device_id").Limit(limit + 1).Find(&rows).Error; err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
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
