package store

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// FindReminder returns the app's reminder key, or ErrNotFound.
func FindReminder(ctx context.Context, db *gorm.DB, app int64, key string) (Reminder, error) {
	var rem Reminder
	err := db.WithContext(ctx).Where("app_id = ? AND `key` = ?", app, key).First(&rem).Error
	return rem, notFound(err)
}

// FindRemindersByKey returns the app's reminders of the given keys that
// exist.
func FindRemindersByKey(ctx context.Context, db *gorm.DB, app int64, keys []string) ([]Reminder, error) {
	var rems []Reminder
	err := db.WithContext(ctx).Where("app_id = ? AND `key` IN ?", app, keys).Find(&rems).Error
	return rems, err
}

// Reminders returns up to limit of the app's reminders by key, after the
// key after ("" for the first).
func Reminders(ctx context.Context, db *gorm.DB, app int64, after string, limit int) ([]Reminder, error) {
	var rems []Reminder
	q := db.WithContext(ctx).Where("app_id = ?", app).Order("`key`").Limit(limit)
	if after != "" {
		q = q.Where("`key` > ?", after)
	}
	err := q.Find(&rems).Error
	return rems, err
}

// ReminderKey returns the key of the reminder with ID id.
func ReminderKey(ctx context.Context, db *gorm.DB, id int64) (string, error) {
	var rem Reminder
	err := db.WithContext(ctx).Select("key").First(&rem, id).Error
	return rem.Key, notFound(err)
}

// TimeRow is one time of a reminder with its location, or, with LocalSec
// -1, one of its locations.
type TimeRow struct {
	ReminderID int64
	Name       string
	Zone       string
	LocalSec   int
}

// ReminderRows returns the times and then the locations of the given
// reminders, each by reminder, location name (and time of day).
func ReminderRows(ctx context.Context, db *gorm.DB, reminders ...int64) ([]TimeRow, error) {
	var rows []TimeRow
	err := db.WithContext(ctx).Table("reminder_times AS rt").Select("rt.reminder_id, l.name, l.zone, rt.local_sec").
		Joins("JOIN locations l ON l.id = rt.location_id").Where("rt.reminder_id IN ?", reminders).
		Order("rt.reminder_id, l.name, rt.local_sec").Scan(&rows).Error
	if err != nil {
		return nil, err
	}
	var locs []TimeRow
	err = db.WithContext(ctx).Table("reminder_locations AS rl").Select("rl.reminder_id, l.name, l.zone, -1 AS local_sec").
		Joins("JOIN locations l ON l.id = rl.location_id").Where("rl.reminder_id IN ?", reminders).
		Order("rl.reminder_id, l.name").Scan(&locs).Error
	return append(rows, locs...), err
}

// ReminderLocations returns the locations of a reminder (ID, name and zone).
func ReminderLocations(ctx context.Context, db *gorm.DB, reminder int64) ([]Location, error) {
	var locs []Location
	err := db.WithContext(ctx).Select("locations.id", "locations.name", "locations.zone").
		Joins("JOIN reminder_locations rl ON rl.location_id = locations.id").
		Where("rl.reminder_id = ?", reminder).Find(&locs).Error
	return locs, err
}

// Place is a location by name, with its zone.
type Place struct{ Name, Zone string }

// PlaceTime is a time of day (seconds after midnight) at a location named.
type PlaceTime struct {
	Location string
	LocalSec int
}

// ReminderPut is a reminder to create or replace.
type ReminderPut struct {
	// Reminder holds the app, the key and every field the app sets; the
	// ID and the creation time of a reminder that exists are kept.
	Reminder Reminder
	// Places are the reminder's locations, the times' first; each is
	// created if new and must otherwise have the zone given.
	Places []Place
	// Times are a daily reminder's times of day.
	Times []PlaceTime
	// ZoneTimes are a daily reminder's times of day in each user's own
	// zone (seconds after midnight).
	ZoneTimes []int
}

// PutResult is what PutReminder did.
type PutResult struct {
	Reminder Reminder
	Created  bool
}

// PutReminder creates or replaces a reminder with its locations and times,
// in one transaction. A location named with another zone than its own is a
// *ZoneError. A changed group count moves no subscription: the locations'
// indexes are regrouped before their next fire (package grouping).
// A concurrent put creating the same location or key makes this one hit
// the unique index; the transaction runs again, and then finds the row.
func PutReminder(ctx context.Context, db *gorm.DB, in ReminderPut) (PutResult, error) {
	var res PutResult
	locIDs := map[string]int64{}
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		res = PutResult{}
		clear(locIDs)
		// Locations first: a location keeps one zone across the app's reminders.
		for _, pl := range in.Places {
			id, err := ensureLocation(tx, in.Reminder.AppID, pl.Name, pl.Zone)
			if err != nil {
				return err
			}
			locIDs[pl.Name] = id
		}
		var old Reminder
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("app_id = ? AND `key` = ?", in.Reminder.AppID, in.Reminder.Key).First(&old).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			res.Created = true
		case err != nil:
			return err
		}
		rem := in.Reminder
		rem.ID, rem.CreatedAt, rem.UpdatedAt = old.ID, old.CreatedAt, old.UpdatedAt
		if err := tx.Save(&rem).Error; err != nil {
			return err
		}
		res.Reminder = rem
		// Keep the rows of times that stay (their creation time bounds
		// catch-up), delete the ones gone, add the new ones.
		var oldTimes []ReminderTime
		if err := tx.Where("reminder_id = ?", rem.ID).Find(&oldTimes).Error; err != nil {
			return err
		}
		wanted := map[[2]int64]bool{}
		for _, t := range in.Times {
			wanted[[2]int64{locIDs[t.Location], int64(t.LocalSec)}] = true
		}
		var drop []int64
		for _, o := range oldTimes {
			k := [2]int64{o.LocationID, int64(o.LocalSec)}
			if wanted[k] {
				delete(wanted, k)
			} else {
				drop = append(drop, o.ID)
			}
		}
		if len(drop) > 0 {
			if err := tx.Where("id IN ?", drop).Delete(&ReminderTime{}).Error; err != nil {
				return err
			}
		}
		var add []ReminderTime
		for k := range wanted {
			add = append(add, ReminderTime{ReminderID: rem.ID, LocationID: k[0], LocalSec: int(k[1])})
		}
		if len(add) > 0 {
			if err := tx.CreateInBatches(&add, 500).Error; err != nil {
				return err
			}
		}
		if err := setZoneTimes(tx, rem.ID, in.ZoneTimes); err != nil {
			return err
		}
		return setLocations(tx, rem, locIDs)
	})
	return res, err
}

// setLocations makes ids the locations of rem. A timetable reminder also
// keeps the locations its timetable names.
func setLocations(tx *gorm.DB, rem Reminder, ids map[string]int64) error {
	keep := make([]int64, 0, len(ids)+1)
	rows := make([]ReminderLocation, 0, len(ids))
	for _, id := range ids {
		keep = append(keep, id)
		rows = append(rows, ReminderLocation{ReminderID: rem.ID, LocationID: id})
	}
	drop := tx.Where("reminder_id = ?", rem.ID)
	if len(keep) > 0 {
		drop = drop.Where("location_id NOT IN ?", keep)
	}
	if rem.Kind == KindTimetable {
		drop = drop.Where("location_id NOT IN (?)", tx.Model(&DatedTime{}).Select("location_id").Where("reminder_id = ?", rem.ID))
	}
	// The zones its users registered in stay: they came with subscriptions.
	drop = drop.Where("location_id NOT IN (?)", zoneLocations(tx, rem.AppID))
	if err := drop.Delete(&ReminderLocation{}).Error; err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	return tx.Clauses(clause.OnConflict{DoNothing: true}).CreateInBatches(&rows, 500).Error
}

// UnsubscribedLocations returns the locations of a reminder that no
// subscription names. It asks, per location, whether one subscription
// exists (one probe of the subscriptions' group index, which stops at the
// first row), rather than listing the distinct locations of all the
// reminder's subscriptions: that read the whole index, 12 s for a reminder
// of ten million, on every PUT of the reminder.
func UnsubscribedLocations(ctx context.Context, db *gorm.DB, reminder int64) ([]int64, error) {
	var empty []int64
	err := db.WithContext(ctx).Model(&ReminderLocation{}).
		Where("reminder_id = ? AND NOT EXISTS (?)", reminder,
			db.Model(&Subscription{}).Select("1").
				Where("subscriptions.reminder_id = reminder_locations.reminder_id AND subscriptions.location_id = reminder_locations.location_id")).
		Order("location_id").Pluck("location_id", &empty).Error
	return empty, err
}

// DeleteReminder deletes a reminder with its times, locations, timetable,
// events, subscriptions, occurrences and group runs, and returns the
// locations its subscribers were indexed at (with repeats).
func DeleteReminder(ctx context.Context, db *gorm.DB, rem Reminder) ([]int64, error) {
	var locs []int64
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		locs = nil
		if err := tx.Model(&ReminderLocation{}).Where("reminder_id = ?", rem.ID).Pluck("location_id", &locs).Error; err != nil {
			return err
		}
		var more []int64
		if err := tx.Model(&Subscription{}).Where("reminder_id = ?", rem.ID).Distinct().Pluck("location_id", &more).Error; err != nil {
			return err
		}
		locs = append(locs, more...)
		occ := tx.Model(&Occurrence{}).Select("id").Where("reminder_id = ?", rem.ID)
		for _, del := range []func() error{
			func() error { return tx.Where("occurrence_id IN (?)", occ).Delete(&GroupRun{}).Error },
			func() error { return tx.Where("reminder_id = ?", rem.ID).Delete(&Occurrence{}).Error },
			func() error { return tx.Where("reminder_id = ?", rem.ID).Delete(&Subscription{}).Error },
			func() error { return tx.Where("reminder_id = ?", rem.ID).Delete(&ReminderTime{}).Error },
			func() error { return tx.Where("reminder_id = ?", rem.ID).Delete(&ReminderLocation{}).Error },
			func() error { return tx.Where("reminder_id = ?", rem.ID).Delete(&DatedTime{}).Error },
			func() error { return tx.Where("reminder_id = ?", rem.ID).Delete(&ZoneTime{}).Error },
			func() error { return tx.Where("reminder_id = ?", rem.ID).Delete(&Event{}).Error },
			func() error { return tx.Delete(&rem).Error },
		} {
			if err := del(); err != nil {
				return err
			}
		}
		return nil
	})
	return locs, err
}

// RemindersByID returns the reminders ids by ID; one that no longer exists
// is missing from the map.
func RemindersByID(ctx context.Context, db *gorm.DB, ids []int64) (map[int64]Reminder, error) {
	rows, err := byIDs[Reminder](ctx, db, ids, func(r Reminder) int64 { return r.ID })
	if err != nil {
		return nil, fmt.Errorf("load reminders: %w", err)
	}
	return rows, nil
}
