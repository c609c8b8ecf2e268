package store

import (
	"fmt"

	"github.com/cespare/xxhash/v2"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// oldDefaultGroups is the group count reminders got before groups were
// sized per location; a reminder that has it did not choose it.
const oldDefaultGroups = 256

// migrateGroupLayout moves to groups sized per (reminder, location):
// subscriptions store the user's bucket (XXH64 mod 65536, as
// grouping.Bucket computes it; a test checks they agree) instead of its
// group under the reminder's group count, group runs record the layout
// they were prepared with, and reminders that kept the old default group
// count are sized per location. The Redis indexes of before have no layout
// and are rebuilt at their next use. Groups in flight during the upgrade
// carry no layout: upgrade between fires.
func migrateGroupLayout(tx *gorm.DB) error {
	m := tx.Migrator()
	if !m.HasColumn(&GroupRun{}, "Layout") {
		if err := m.AddColumn(&GroupRun{}, "Layout"); err != nil {
			return fmt.Errorf("add group_runs.layout: %w", err)
		}
	}
	if err := tx.Model(&Reminder{}).Where("groups = ?", oldDefaultGroups).Update("groups", 0).Error; err != nil {
		return fmt.Errorf("size reminders per location: %w", err)
	}
	// Keyset pages over the primary key, each rewritten with one upsert.
	var after Subscription
	for {
		var page []Subscription
		q := tx.Order("reminder_id, user_id").Limit(5000)
		if after.UserID != "" || after.ReminderID != 0 {
			q = q.Where("(reminder_id, user_id) > (?, ?)", after.ReminderID, after.UserID)
		}
		if err := q.Find(&page).Error; err != nil {
			return fmt.Errorf("read subscriptions: %w", err)
		}
		if len(page) == 0 {
			return nil
		}
		for i := range page {
			page[i].GroupNo = bucket(page[i].UserID)
		}
		if err := tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "reminder_id"}, {Name: "user_id"}},
			DoUpdates: clause.AssignmentColumns([]string{"group_no"}),
		}).CreateInBatches(&page, 1000).Error; err != nil {
			return fmt.Errorf("store buckets: %w", err)
		}
		after = page[len(page)-1]
	}
}

// bucket is grouping.Bucket, which this package cannot import.
func bucket(userID string) int { return int(xxhash.Sum64String(userID) % 65536) }
