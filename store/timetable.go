package store

import (
	"context"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// StoreDated upserts timetable rows (a row for an existing reminder,
// location and date replaces its time) and adds their locations to their
// reminders, in one transaction.
func StoreDated(ctx context.Context, db *gorm.DB, rows []DatedTime) error {
	return Transaction(ctx, db, func(tx *gorm.DB) error { return storeDated(tx, rows) })
}

func storeDated(tx *gorm.DB, rows []DatedTime) error {
	err := tx.Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "reminder_id"}, {Name: "location_id"}, {Name: "date"}},
		DoUpdates: clause.AssignmentColumns([]string{"local_sec"}),
	}).CreateInBatches(&rows, 1000).Error
	if err != nil {
		return err
	}
	pairs := map[ReminderLocation]bool{}
	for _, dt := range rows {
		pairs[ReminderLocation{ReminderID: dt.ReminderID, LocationID: dt.LocationID}] = true
	}
	rl := make([]ReminderLocation, 0, len(pairs))
	for p := range pairs {
		rl = append(rl, p)
	}
	return tx.Clauses(clause.OnConflict{DoNothing: true}).CreateInBatches(&rl, 1000).Error
}

// PutDatedTime sets a timetable reminder's time at the app's location on
// date, creating the location in zone if it is new; a location that has
// another zone is a *ZoneError.
func PutDatedTime(ctx context.Context, db *gorm.DB, app, reminder int64, location, zone, date string, sec int) error {
	return Transaction(ctx, db, func(tx *gorm.DB) error {
		id, err := ensureLocation(tx, app, location, zone)
		if err != nil {
			return err
		}
		return storeDated(tx, []DatedTime{{ReminderID: reminder, LocationID: id, Date: date, LocalSec: sec}})
	})
}

// DeleteDatedTime removes a timetable reminder's time at the app's location
// on date, or returns ErrNotFound.
func DeleteDatedTime(ctx context.Context, db *gorm.DB, app, reminder int64, location, date string) error {
	loc := db.Model(&Location{}).Select("id").Where("app_id = ? AND name = ?", app, location)
	res := db.WithContext(ctx).Where("reminder_id = ? AND location_id IN (?) AND date = ?", reminder, loc, date).
		Delete(&DatedTime{})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// DatedRow is a timetable row with its location.
type DatedRow struct {
	Name, Zone, Date string
	LocalSec         int
}

// TimetableFilter narrows a timetable listing; empty fields do not.
type TimetableFilter struct {
	From, To string // dates, YYYY-MM-DD, inclusive
	Location string
}

// Timetable returns up to limit of a reminder's dated times, by date and
// location.
func Timetable(ctx context.Context, db *gorm.DB, reminder int64, f TimetableFilter, limit int) ([]DatedRow, error) {
	var rows []DatedRow
	q := db.WithContext(ctx).Table("dated_times AS dt").Select("l.name, l.zone, dt.date, dt.local_sec").
		Joins("JOIN locations l ON l.id = dt.location_id").Where("dt.reminder_id = ?", reminder)
	if f.From != "" {
		q = q.Where("dt.date >= ?", f.From)
	}
	if f.To != "" {
		q = q.Where("dt.date <= ?", f.To)
	}
	if f.Location != "" {
		q = q.Where("l.name = ?", f.Location)
	}
	err := q.Order("dt.date, l.name").Limit(limit).Scan(&rows).Error
	return rows, err
}
