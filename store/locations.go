package store

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
)

// ZoneError is a location named with another zone than the one it has: a
// location keeps one zone across an app's reminders.
type ZoneError struct {
	Location string
	Zone     string // the zone it has
}

func (e *ZoneError) Error() string {
	return fmt.Sprintf("location %q already has zone %q", e.Location, e.Zone)
}

// ensureLocation returns the ID of the app's location name, creating it in
// zone; a location that has another zone is a *ZoneError.
func ensureLocation(tx *gorm.DB, app int64, name, zone string) (int64, error) {
	var l Location
	err := tx.Where("app_id = ? AND name = ?", app, name).First(&l).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		l = Location{AppID: app, Name: name, Zone: zone}
		err = tx.Create(&l).Error
	}
	if err != nil {
		return 0, err
	}
	if l.Zone != zone {
		return 0, &ZoneError{Location: l.Name, Zone: l.Zone}
	}
	return l.ID, nil
}

// EnsureLocations returns the IDs of the app's locations named in zones
// (name to zone), creating those that are new, in one transaction.
func EnsureLocations(ctx context.Context, db *gorm.DB, app int64, zones map[string]string) (map[string]int64, error) {
	ids := make(map[string]int64, len(zones))
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		clear(ids)
		for name, zone := range zones {
			id, err := ensureLocation(tx, app, name, zone)
			if err != nil {
				return err
			}
			ids[name] = id
		}
		return nil
	})
	return ids, err
}

// FindLocation returns the app's location name, or ErrNotFound.
func FindLocation(ctx context.Context, db *gorm.DB, app int64, name string) (Location, error) {
	var l Location
	err := db.WithContext(ctx).Where("app_id = ? AND name = ?", app, name).First(&l).Error
	return l, notFound(err)
}

// LocationsNamed returns the app's locations of the given names that exist.
func LocationsNamed(ctx context.Context, db *gorm.DB, app int64, names []string) ([]Location, error) {
	var locs []Location
	err := db.WithContext(ctx).Where("app_id = ? AND name IN ?", app, names).Find(&locs).Error
	return locs, err
}
