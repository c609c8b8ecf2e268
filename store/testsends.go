package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
)

// FindSubscription returns the subscription of user to a reminder, or
// ErrNotFound.
func FindSubscription(ctx context.Context, db *gorm.DB, reminder int64, user string) (Subscription, error) {
	var s Subscription
	err := db.WithContext(ctx).Where("reminder_id = ? AND user_id = ?", reminder, user).First(&s).Error
	return s, notFound(err)
}

// HasReminderLocation reports whether a reminder fires at location.
func HasReminderLocation(ctx context.Context, db *gorm.DB, reminder, location int64) (bool, error) {
	var n int64
	err := db.WithContext(ctx).Model(&ReminderLocation{}).Where("reminder_id = ? AND location_id = ?", reminder, location).Count(&n).Error
	return n > 0, err
}

// AddTestSend stores o, a test send (TestUser set) in state scheduled, for
// the firer to fire as it fires any occurrence. Two test sends to one user
// in the same millisecond would share the unique key: the later one moves a
// millisecond on.
func AddTestSend(ctx context.Context, db *gorm.DB, o Occurrence) (Occurrence, error) {
	if o.TestUser == "" {
		return o, errors.New("add test send: no user")
	}
	o.FireAt = stored(o.FireAt)
	at := o.FireAt
	var out Occurrence
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		out = o
		out.FireAt = at
		for range 100 {
			var n int64
			err := tx.Model(&Occurrence{}).Where("reminder_id = ? AND location_id = ? AND fire_at = ? AND event_id = 0 AND test_user = ?",
				out.ReminderID, out.LocationID, out.FireAt, out.TestUser).Count(&n).Error
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
			out.FireAt = out.FireAt.Add(time.Millisecond)
		}
		return tx.Create(&out).Error
	})
	return out, err
}
