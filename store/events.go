package store

import (
	"context"
	"errors"

	"gorm.io/gorm"
)

// Errors of the event operations that callers answer differently.
var (
	// ErrIdempotencyConflict: the idempotency key was used for a request
	// of another hash.
	ErrIdempotencyConflict = errors.New("idempotency key used for another request")
	// ErrFired: the event has occurrences past scheduled.
	ErrFired = errors.New("event has fired")
)

// AddEvent stores ev, unless it has an idempotency key that an event of
// the app has: that event is returned, with replayed set, if its request
// hash is ev's, and ErrIdempotencyConflict otherwise. A new event is not
// stored if refuse is not nil; refuse is returned instead.
func AddEvent(ctx context.Context, db *gorm.DB, ev Event, refuse error) (out Event, replayed bool, err error) {
	err = Transaction(ctx, db, func(tx *gorm.DB) error {
		out, replayed = Event{}, false
		if ev.IdempotencyKey != nil {
			err := tx.Where("app_id = ? AND idempotency_key = ?", ev.AppID, *ev.IdempotencyKey).First(&out).Error
			switch {
			case err == nil:
				if out.RequestHash != ev.RequestHash {
					return ErrIdempotencyConflict
				}
				replayed = true
				return nil
			case !errors.Is(err, gorm.ErrRecordNotFound):
				return err
			}
		}
		if refuse != nil {
			return refuse
		}
		out = ev
		return tx.Create(&out).Error
	})
	return out, replayed, err
}

// FindEvent returns the app's event id, or ErrNotFound.
func FindEvent(ctx context.Context, db *gorm.DB, app, id int64) (Event, error) {
	var ev Event
	err := db.WithContext(ctx).Where("id = ? AND app_id = ?", id, app).First(&ev).Error
	return ev, notFound(err)
}

// CancelEvent cancels an event none of whose occurrences has fired, or
// returns ErrFired.
func CancelEvent(ctx context.Context, db *gorm.DB, id int64) error {
	return Transaction(ctx, db, func(tx *gorm.DB) error {
		var fired int64
		if err := tx.Model(&Occurrence{}).
			Where("event_id = ? AND state NOT IN ?", id, []string{OccScheduled, OccCanceled}).Count(&fired).Error; err != nil {
			return err
		}
		if fired > 0 {
			return ErrFired
		}
		return tx.Model(&Event{}).Where("id = ?", id).Update("canceled", true).Error
	})
}

// TopicEvents returns up to limit of a topic reminder's events with IDs
// below before (0: from the newest), the newest first, and their
// occurrences by event, in one query each.
func TopicEvents(ctx context.Context, db *gorm.DB, reminder, before int64, limit int) ([]Event, map[int64][]OccurrenceRow, error) {
	var evs []Event
	q := db.WithContext(ctx).Where("reminder_id = ?", reminder)
	if before > 0 {
		q = q.Where("id < ?", before)
	}
	if err := q.Order("id DESC").Limit(limit).Find(&evs).Error; err != nil {
		return nil, nil, err
	}
	occ := map[int64][]OccurrenceRow{}
	if len(evs) == 0 {
		return evs, occ, nil
	}
	ids := make([]int64, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	var rows []OccurrenceRow
	if err := occurrenceQuery(ctx, db).Where("o.event_id IN ?", ids).Order("l.name").Scan(&rows).Error; err != nil {
		return nil, nil, err
	}
	for _, r := range rows {
		occ[r.EventID] = append(occ[r.EventID], r)
	}
	return evs, occ, nil
}
