package store

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// OccurrenceRow is an occurrence with its reminder's key and its location.
type OccurrenceRow struct {
	ID          int64
	Reminder    string
	EventID     int64
	TestUser    string
	Location    string
	Zone        string
	FireAt      time.Time
	ExpiresAt   time.Time
	MissAt      *time.Time
	State       string
	GroupsDone  int
	GroupsTotal int
	Delivered   int64
	Failed      int64
	Expired     int64
	FiredAt     *time.Time
	DoneAt      *time.Time

	// Opens counts the users who opened it.
	Opens                            int64
	SpreadS                          int64
	SlotsLateMs                      int64
	SkippedPreference, Quiet, Capped int64
}

func occurrenceQuery(ctx context.Context, db *gorm.DB) *gorm.DB {
	return db.WithContext(ctx).Table("occurrences AS o").
		Select("o.id, o.event_id, o.fire_at, o.expires_at, o.miss_at, o.state, o.groups_done, o.groups_total, o.delivered, o.failed, o.expired, o.fired_at, o.done_at, o.test_user, o.spread_s, o.slots_late_ms, o.opens, o.skipped_preference, o.quiet, o.capped, l.name AS location, l.zone, rem.`key` AS reminder").
		Joins("JOIN locations l ON l.id = o.location_id").
		Joins("JOIN reminders rem ON rem.id = o.reminder_id")
}

// ReminderOccurrences returns up to limit of a reminder's occurrences (test
// sends left out), in
// state if not empty, the latest first.
func ReminderOccurrences(ctx context.Context, db *gorm.DB, reminder int64, state string, limit int) ([]OccurrenceRow, error) {
	var rows []OccurrenceRow
	// Test sends are not the reminder's fire history.
	q := occurrenceQuery(ctx, db).Where("o.reminder_id = ? AND o.test_user = ''", reminder)
	if state != "" {
		q = q.Where("o.state = ?", state)
	}
	err := q.Order("o.fire_at DESC, l.name").Limit(limit).Scan(&rows).Error
	return rows, err
}

// EventOccurrences returns the occurrences of an event, by location.
func EventOccurrences(ctx context.Context, db *gorm.DB, event int64) ([]OccurrenceRow, error) {
	var rows []OccurrenceRow
	err := occurrenceQuery(ctx, db).Where("o.event_id = ?", event).Order("l.name").Scan(&rows).Error
	return rows, err
}

// FindOccurrence returns the app's occurrence id, or ErrNotFound.
func FindOccurrence(ctx context.Context, db *gorm.DB, app, id int64) (OccurrenceRow, error) {
	var rows []OccurrenceRow
	if err := occurrenceQuery(ctx, db).Where("o.id = ? AND rem.app_id = ?", id, app).Scan(&rows).Error; err != nil {
		return OccurrenceRow{}, err
	}
	if len(rows) == 0 {
		return OccurrenceRow{}, ErrNotFound
	}
	return rows[0], nil
}

// CheckOccurrence returns ErrNotFound unless occurrence id is the app's.
func CheckOccurrence(ctx context.Context, db *gorm.DB, app, id int64) error {
	var n int64
	err := db.WithContext(ctx).Table("occurrences AS o").Joins("JOIN reminders r ON r.id = o.reminder_id").
		Where("o.id = ? AND r.app_id = ?", id, app).Count(&n).Error
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// ChannelCount is what one channel did for an occurrence (or one group).
type ChannelCount struct {
	Channel                        string
	Sent, Failed, Expired, Skipped int64
}

// ChannelCounts sums an occurrence's delivery counts by channel, of one
// group if group is not nil.
func ChannelCounts(ctx context.Context, db *gorm.DB, occurrence int64, group *int) ([]ChannelCount, error) {
	q := db.WithContext(ctx).Model(&DeliveryCount{}).
		Select("channel, SUM(sent) AS sent, SUM(failed) AS failed, SUM(expired) AS expired, SUM(skipped) AS skipped").
		Where("occurrence_id = ?", occurrence)
	if group != nil {
		q = q.Where("group_no = ?", *group)
	}
	var rows []ChannelCount
	err := q.Group("channel").Order("channel").Scan(&rows).Error
	return rows, err
}

// DeliveryFailures returns up to limit of an occurrence's failures by user
// and device, after the user and device of after if it is not nil.
func DeliveryFailures(ctx context.Context, db *gorm.DB, occurrence int64, after *DeliveryFailure, limit int) ([]DeliveryFailure, error) {
	q := db.WithContext(ctx).Where("occurrence_id = ?", occurrence)
	if after != nil {
		q = q.Where("user_id > ? OR (user_id = ? AND device_id > ?)", after.UserID, after.UserID, after.DeviceID)
	}
	var rows []DeliveryFailure
	err := q.Order("user_id, device_id").Limit(limit).Find(&rows).Error
	return rows, err
}
