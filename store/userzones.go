package store

import (
	"context"
	"errors"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/chime-dev/chime/userzone"
)

// zoneLocations selects the IDs of an app's managed zone locations.
func zoneLocations(tx *gorm.DB, app int64) *gorm.DB {
	return tx.Model(&Location{}).Select("id").Where("app_id = ? AND name LIKE ?", app, userzone.Prefix+"%")
}

// setZoneTimes makes secs the zone times of a reminder, keeping the rows
// of those that stay (their creation time bounds catch-up).
func setZoneTimes(tx *gorm.DB, reminder int64, secs []int) error {
	drop := tx.Where("reminder_id = ?", reminder)
	if len(secs) > 0 {
		drop = drop.Where("local_sec NOT IN ?", secs)
	}
	if err := drop.Delete(&ZoneTime{}).Error; err != nil {
		return err
	}
	if len(secs) == 0 {
		return nil
	}
	rows := make([]ZoneTime, len(secs))
	for i, s := range secs {
		rows[i] = ZoneTime{ReminderID: reminder, LocalSec: s}
	}
	return tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&rows).Error
}

// ZoneTimes returns the zone times of the given reminders, by reminder, in
// order of time of day.
func ZoneTimes(ctx context.Context, db *gorm.DB, reminders ...int64) (map[int64][]int, error) {
	var rows []ZoneTime
	if err := db.WithContext(ctx).Where("reminder_id IN ?", reminders).Order("reminder_id, local_sec").Find(&rows).Error; err != nil {
		return nil, err
	}
	out := map[int64][]int{}
	for _, r := range rows {
		out[r.ReminderID] = append(out[r.ReminderID], r.LocalSec)
	}
	return out, nil
}

// ZoneLocation is a managed zone location of a reminder; Added says the
// reminder had no subscribers there before (its index is empty).
type ZoneLocation struct {
	ID    int64
	Zone  string
	Added bool
}

// EnsureZoneLocations returns the app's managed locations of zones (by
// zone), creating those that are new, and makes them locations of the
// reminder, in one transaction.
func EnsureZoneLocations(ctx context.Context, db *gorm.DB, app, reminder int64, zones []string) (map[string]ZoneLocation, error) {
	out := make(map[string]ZoneLocation, len(zones))
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		clear(out)
		for _, z := range zones {
			id, err := ensureLocation(tx, app, userzone.Location(z), z)
			var ze *ZoneError
			if errors.As(err, &ze) {
				return errors.New("managed location " + ze.Location + " has zone " + ze.Zone) // never written so
			}
			if err != nil {
				return err
			}
			res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&ReminderLocation{ReminderID: reminder, LocationID: id})
			if res.Error != nil {
				return res.Error
			}
			out[z] = ZoneLocation{ID: id, Zone: z, Added: res.RowsAffected == 1}
		}
		return nil
	})
	return out, err
}
