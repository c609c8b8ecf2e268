package store

import (
	"context"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Subscribe stores subscriptions of one reminder (a user's replaces the
// one it has) in one transaction, and returns those the users had before,
// for the index changes to apply once it commits.
func Subscribe(ctx context.Context, db *gorm.DB, reminder int64, subs []Subscription) ([]Subscription, error) {
	ids := make([]string, len(subs))
	for i, s := range subs {
		ids[i] = s.UserID
	}
	var old []Subscription
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		old = nil
		for start := 0; start < len(ids); start += 1000 {
			var part []Subscription
			end := min(start+1000, len(ids))
			if err := tx.Where("reminder_id = ? AND user_id IN ?", reminder, ids[start:end]).Find(&part).Error; err != nil {
				return err
			}
			old = append(old, part...)
		}
		return tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "reminder_id"}, {Name: "user_id"}},
			DoUpdates: clause.AssignmentColumns([]string{"location_id", "group_no"}),
		}).CreateInBatches(&subs, 1000).Error
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

// Audience returns how many users are subscribed to a reminder at a
// location and the group count the reminder fixes (0: sized per location).
func Audience(ctx context.Context, db *gorm.DB, reminder, location int64) (users int64, groups int, err error) {
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
