package store

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
)

// LastDone returns the latest of a reminder's own occurrences at location
// (not a topic's, not a test send) that fired and finished at or before
// now, and false if there is none.
func LastDone(ctx context.Context, db *gorm.DB, reminder, location int64, now time.Time) (Occurrence, bool, error) {
	var o Occurrence
	err := db.WithContext(ctx).
		Where("reminder_id = ? AND location_id = ? AND event_id = 0 AND test_user = '' AND state = ? AND fire_at <= ?",
			reminder, location, OccDone, stored(now)).
		Order("fire_at DESC").Limit(1).Take(&o).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Occurrence{}, false, nil
	}
	return o, err == nil, err
}

// AddCatchUp stores, in state scheduled, the catch-up of done for user: an
// occurrence of the same reminder, location, instant and validity that
// delivers to user only (TestUser), for the firer to fire as it fires a
// test send. It reports false, storing nothing, when the user's catch-up
// of that instant is stored already: a user catches an occurrence up once.
func AddCatchUp(ctx context.Context, db *gorm.DB, done Occurrence, user string) (Occurrence, bool, error) {
	if user == "" {
		return Occurrence{}, false, errors.New("add catch-up: no user")
	}
	expires := done.ExpiresAt
	o := Occurrence{ReminderID: done.ReminderID, LocationID: done.LocationID, FireAt: stored(done.FireAt), Prayer: done.Prayer,
		TestUser: user, ExpiresAt: expires, MissAt: &expires, State: OccScheduled}
	created := false
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		var n int64
		err := tx.Model(&Occurrence{}).Where("reminder_id = ? AND location_id = ? AND fire_at = ? AND event_id = 0 AND test_user = ?",
			o.ReminderID, o.LocationID, o.FireAt, user).Count(&n).Error
		if err != nil || n > 0 {
			return err
		}
		o.ID, created = 0, true
		return tx.Create(&o).Error
	})
	return o, created, err
}

// CountExpired counts n more users of occurrence id as expired: users who
// joined its location after it fired and before a catch-up could reach
// them, once its validity had ended.
func CountExpired(ctx context.Context, db *gorm.DB, id int64, n int64) error {
	return Transaction(ctx, db, func(tx *gorm.DB) error {
		return tx.Model(&Occurrence{}).Where("id = ?", id).Update("expired", gorm.Expr("expired + ?", n)).Error
	})
}
