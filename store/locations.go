package store

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
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

// LocationFields are what PUT /v1/locations/{location} sets: the zone
// (required to create, and a location keeps its zone), the coordinates and
// the prayer convention override, which replace those stored.
type LocationFields struct {
	Zone                             string
	Latitude, Longitude              *float64
	Elevation                        *float64
	Method, Madhab, HighLatitudeRule string
}

// ErrZoneRequired is a new location given without a zone.
var ErrZoneRequired = errors.New("a new location needs a zone")

// PutLocation creates the app's location name with f, or replaces the
// coordinates and override of the one there is; created says which. A
// zone other than the location's is a *ZoneError, and a new location
// without a zone ErrZoneRequired.
func PutLocation(ctx context.Context, db *gorm.DB, app int64, name string, f LocationFields) (l Location, created bool, err error) {
	err = Transaction(ctx, db, func(tx *gorm.DB) error {
		l, created = Location{}, false
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("app_id = ? AND name = ?", app, name).First(&l).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			if f.Zone == "" {
				return ErrZoneRequired
			}
			l, created = Location{AppID: app, Name: name, Zone: f.Zone}, true
		case err != nil:
			return err
		case f.Zone != "" && f.Zone != l.Zone:
			return &ZoneError{Location: l.Name, Zone: l.Zone}
		}
		l.Latitude, l.Longitude, l.Elevation = f.Latitude, f.Longitude, f.Elevation
		l.Method, l.Madhab, l.HighLatitudeRule = f.Method, f.Madhab, f.HighLatitudeRule
		return tx.Save(&l).Error
	})
	return l, created, err
}

// Locations returns up to limit of the app's locations by name, after the
// name after.
func Locations(ctx context.Context, db *gorm.DB, app int64, after string, limit int) ([]Location, error) {
	var locs []Location
	err := db.WithContext(ctx).Where("app_id = ? AND name > ?", app, after).Order("name").Limit(limit).Find(&locs).Error
	return locs, err
}

// LocationsWithoutCoordinates returns which of the app's locations named
// do not exist or have no latitude and longitude: those a prayer reminder
// cannot compute times at.
func LocationsWithoutCoordinates(ctx context.Context, db *gorm.DB, app int64, names []string) (map[string]bool, error) {
	var with []string
	err := db.WithContext(ctx).Model(&Location{}).Where("app_id = ? AND name IN ? AND latitude IS NOT NULL AND longitude IS NOT NULL", app, names).
		Pluck("name", &with).Error
	if err != nil {
		return nil, err
	}
	missing := make(map[string]bool, len(names))
	for _, n := range names {
		missing[n] = true
	}
	for _, n := range with {
		delete(missing, n)
	}
	return missing, nil
}

// LocationsByID returns the locations ids by ID; one that no longer exists
// is missing from the map.
func LocationsByID(ctx context.Context, db *gorm.DB, ids []int64) (map[int64]Location, error) {
	rows, err := byIDs[Location](ctx, db, ids, func(l Location) int64 { return l.ID })
	if err != nil {
		return nil, fmt.Errorf("load locations: %w", err)
	}
	return rows, nil
}
