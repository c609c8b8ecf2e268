package store

import (
	"context"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// subscribeBatch is how many subscriptions go in one statement: 5 values
// a row, well below the 65,535 placeholders MySQL takes and SQLite's 32,766.
const subscribeBatch = 2000

// Subscribe stores subscriptions of one reminder (a user's replaces the
// one it has) in one transaction, and returns those the users had before,
// for the index changes to apply once it commits.
//
// Most bulk registrations are of new users, so each batch is first
// inserted as new rows only, which needs no read; if some of its users
// were subscribed already, that insert is rolled back to a savepoint and
// the batch reads the rows it replaces, then upserts.
func Subscribe(ctx context.Context, db *gorm.DB, reminder int64, subs []Subscription) ([]Subscription, error) {
	var old []Subscription
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		old = nil
		for start := 0; start < len(subs); start += subscribeBatch {
			part := subs[start:min(start+subscribeBatch, len(subs))]
			if err := tx.SavePoint("subscribe").Error; err != nil {
				return err
			}
			res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&part)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == int64(len(part)) {
				continue // all new
			}
			if err := tx.RollbackTo("subscribe").Error; err != nil {
				return err
			}
			ids := make([]string, len(part))
			for i, s := range part {
				ids[i] = s.UserID
			}
			var was []Subscription
			if err := tx.Select("reminder_id", "user_id", "location_id", "group_no", "created_at").
				Where("reminder_id = ? AND user_id IN ?", reminder, ids).Find(&was).Error; err != nil {
				return err
			}
			old = append(old, was...)
			if err := tx.Clauses(clause.OnConflict{
				Columns:   []clause.Column{{Name: "reminder_id"}, {Name: "user_id"}},
				DoUpdates: clause.AssignmentColumns([]string{"location_id", "group_no"}),
			}).Create(&part).Error; err != nil {
				return err
			}
		}
		return nil
	})
	return old, err
}

// Unsubscribe deletes a user's subscription to a reminder and returns it,
// or returns ErrNotFound.
func Unsubscribe(ctx context.Context, db *gorm.DB, reminder int64, user string) (Subscription, error) {
	var sub Subscription
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		if err := tx.Where("reminder_id = ? AND user_id = ?", reminder, user).First(&sub).Error; err != nil {
			return err
		}
		return tx.Where("reminder_id = ? AND user_id = ?", reminder, user).Delete(&Subscription{}).Error
	})
	return sub, notFound(err)
}

// LocationAudience returns how many users are subscribed to a reminder at a
// location and the group count the reminder fixes (0: sized per location).
func LocationAudience(ctx context.Context, db *gorm.DB, reminder, location int64) (users int64, groups int, err error) {
	if err := db.WithContext(ctx).Model(&Subscription{}).Where("reminder_id = ? AND location_id = ?", reminder, location).
		Count(&users).Error; err != nil {
		return 0, 0, err
	}
	var g []int
	if err := db.WithContext(ctx).Model(&Reminder{}).Where("id = ?", reminder).Pluck("groups", &g).Error; err != nil {
		return 0, 0, err
	}
	if len(g) == 1 {
		groups = g[0]
	}
	return users, groups, nil
}

// FiringAt reports whether an occurrence of a reminder at a location other
// than except is being delivered.
func FiringAt(ctx context.Context, db *gorm.DB, reminder, location, except int64) (bool, error) {
	var n int64
	err := db.WithContext(ctx).Model(&Occurrence{}).
		Where("reminder_id = ? AND location_id = ? AND state = ? AND id <> ?", reminder, location, OccFiring, except).
		Count(&n).Error
	return n > 0, err
}
