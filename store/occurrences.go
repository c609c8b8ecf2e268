package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// OccurrenceRow is an occurrence with its reminder's key and its location.
type OccurrenceRow struct {
	ID          int64
	Reminder    string
	EventID     int64
	TestUser    string
	Location    string
	Zone        string
	FireAt      time.Time
	ExpiresAt   time.Time
	MissAt      *time.Time
	State       string
	GroupsDone  int
	GroupsTotal int
	Delivered   int64
	Failed      int64
	Expired     int64
	FiredAt     *time.Time
	DoneAt      *time.Time

	// Opens counts the users who opened it.
	Opens                            int64
	SpreadS                          int64
	SlotsLateMs                      int64
	SkippedPreference, Quiet, Capped int64
}

func occurrenceQuery(ctx context.Context, db *gorm.DB) *gorm.DB {
	return db.WithContext(ctx).Table("occurrences AS o").
		Select("o.id, o.event_id, o.fire_at, o.expires_at, o.miss_at, o.state, o.groups_done, o.groups_total, o.delivered, o.failed, o.expired, o.fired_at, o.done_at, o.test_user, o.spread_s, o.slots_late_ms, o.opens, o.skipped_preference, o.quiet, o.capped, l.name AS location, l.zone, rem.`key` AS reminder").
		Joins("JOIN locations l ON l.id = o.location_id").
		Joins("JOIN reminders rem ON rem.id = o.reminder_id")
}

// ReminderOccurrences returns up to limit of a reminder's occurrences (test
// sends left out), in
// state if not empty, the latest first.
func ReminderOccurrences(ctx context.Context, db *gorm.DB, reminder int64, state string, limit int) ([]OccurrenceRow, error) {
	var rows []OccurrenceRow
	// Test sends are not the reminder's fire history.
	q := occurrenceQuery(ctx, db).Where("o.reminder_id = ? AND o.test_user = ''", reminder)
	if state != "" {
		q = q.Where("o.state = ?", state)
	}
	err := q.Order("o.fire_at DESC, l.name").Limit(limit).Scan(&rows).Error
	return rows, err
}

// EventOccurrences returns the occurrences of an event, by location.
func EventOccurrences(ctx context.Context, db *gorm.DB, event int64) ([]OccurrenceRow, error) {
	var rows []OccurrenceRow
	err := occurrenceQuery(ctx, db).Where("o.event_id = ?", event).Order("l.name").Scan(&rows).Error
	return rows, err
}

// FindOccurrence returns the app's occurrence id, or ErrNotFound.
func FindOccurrence(ctx context.Context, db *gorm.DB, app, id int64) (OccurrenceRow, error) {
	var rows []OccurrenceRow
	if err := occurrenceQuery(ctx, db).Where("o.id = ? AND rem.app_id = ?", id, app).Scan(&rows).Error; err != nil {
		return OccurrenceRow{}, err
	}
	if len(rows) == 0 {
		return OccurrenceRow{}, ErrNotFound
	}
	return rows[0], nil
}

// CheckOccurrence returns ErrNotFound unless occurrence id is the app's.
func CheckOccurrence(ctx context.Context, db *gorm.DB, app, id int64) error {
	var n int64
	err := db.WithContext(ctx).Table("occurrences AS o").Joins("JOIN reminders r ON r.id = o.reminder_id").
		Where("o.id = ? AND r.app_id = ?", id, app).Count(&n).Error
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// ChannelCount is what one channel did for an occurrence (or one group).
type ChannelCount struct {
	Channel                        string
	Sent, Failed, Expired, Skipped int64
}

// ChannelCounts sums an occurrence's delivery counts by channel, of one
// group if group is not nil.
func ChannelCounts(ctx context.Context, db *gorm.DB, occurrence int64, group *int) ([]ChannelCount, error) {
	q := db.WithContext(ctx).Model(&DeliveryCount{}).
		Select("channel, SUM(sent) AS sent, SUM(failed) AS failed, SUM(expired) AS expired, SUM(skipped) AS skipped").
		Where("occurrence_id = ?", occurrence)
	if group != nil {
		q = q.Where("group_no = ?", *group)
	}
	var rows []ChannelCount
	err := q.Group("channel").Order("channel").Scan(&rows).Error
	return rows, err
}

// DeliveryFailures returns up to limit of an occurrence's failures by user
// and device, after the user and device of after if it is not nil.
func DeliveryFailures(ctx context.Context, db *gorm.DB, occurrence int64, after *DeliveryFailure, limit int) ([]DeliveryFailure, error) {
	q := db.WithContext(ctx).Where("occurrence_id = ?", occurrence)
	if after != nil {
		q = q.Where("user_id > ? OR (user_id = ? AND device_id > ?)", after.UserID, after.UserID, after.DeviceID)
	}
	var rows []DeliveryFailure
	err := q.Order("user_id, device_id").Limit(limit).Find(&rows).Error
	return rows, err
}

// A Claim is the firing recorded for one occurrence if it is still
// scheduled: its number of groups (none marks it done at once) and, for a
// spread send, its spread.
type Claim struct {
	ID     int64
	Groups int
	Spread *int64 // seconds; nil for a send at the instant
}

// claimsPerStatement bounds the occurrences one statement names.
const claimsPerStatement = 1000

// ClaimOccurrences moves the claims' occurrences that are still scheduled
// to firing (or done, with no groups) at now, and returns the IDs it moved,
// which are the fires this caller won. Each thousand is a transaction that
// first locks its rows by primary key in ID order, so two coordinators
// claiming overlapping occurrences wait for one another instead of both
// winning; the loser finds them taken. A fire of thousands of locations at
// one instant is a few statements, not a transaction per location. On an
// error the IDs won by the thousands before it are returned with it.
func ClaimOccurrences(ctx context.Context, db *gorm.DB, claims []Claim, now time.Time) ([]int64, error) {
	var won []int64
	err := ClaimOccurrencesEach(ctx, db, claims, now, func(_, w []int64) { won = append(won, w...) })
	return won, err
}

// ClaimOccurrencesEach claims as ClaimOccurrences does and calls each once
// a thousand's transaction has committed, with the IDs it claimed and those
// it won, so that the caller can go on with them (enqueue their tasks)
// while the next thousand is claimed. each runs on the caller's goroutine.
func ClaimOccurrencesEach(ctx context.Context, db *gorm.DB, claims []Claim, now time.Time, each func(ids, won []int64)) error {
	byID := make(map[int64]Claim, len(claims))
	ids := make([]int64, 0, len(claims))
	for _, c := range claims {
		if _, dup := byID[c.ID]; !dup {
			ids = append(ids, c.ID)
		}
		byID[c.ID] = c
	}
	slices.Sort(ids)
	for chunk := range slices.Chunk(ids, claimsPerStatement) {
		var free []int64
		err := Transaction(ctx, db, func(tx *gorm.DB) error {
			free = free[:0]
			// Locked by primary key alone (the state is checked here, not
			// in the statement), so the lock never spans the due index.
			var rows []Occurrence
			if err := tx.Select("id", "state").Clauses(clause.Locking{Strength: "UPDATE"}).
				Where("id IN ?", chunk).Order("id").Find(&rows).Error; err != nil {
				return err
			}
			for _, r := range rows {
				if r.State == OccScheduled {
					free = append(free, r.ID)
				}
			}
			// One statement per distinct firing (most small locations
			// fire with the same number of groups).
			type firing struct {
				groups  int
				spreadS int64
				spread  bool
			}
			same := map[firing][]int64{}
			var order []firing
			for _, id := range free {
				c := byID[id]
				f := firing{groups: c.Groups, spread: c.Spread != nil}
				if c.Spread != nil {
					f.spreadS = *c.Spread
				}
				if _, ok := same[f]; !ok {
					order = append(order, f)
				}
				same[f] = append(same[f], id)
			}
			for _, f := range order {
				fields := map[string]any{"state": OccFiring, "fired_at": now, "groups_total": f.groups}
				if f.spread {
					fields["spread_s"] = f.spreadS
				}
				if f.groups == 0 {
					fields["state"], fields["done_at"] = OccDone, now
				}
				if err := tx.Model(&Occurrence{}).Where("id IN ? AND state = ?", same[f], OccScheduled).Updates(fields).Error; err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("record firing: %w", err)
		}
		each(chunk, free)
	}
	return nil
}

// ReminderEdits returns when each of the reminders ids was last edited;
// a reminder that no longer exists is missing from the map.
func ReminderEdits(ctx context.Context, db *gorm.DB, ids []int64) (map[int64]time.Time, error) {
	out := make(map[int64]time.Time, len(ids))
	for chunk := range slices.Chunk(ids, claimsPerStatement) {
		var rows []struct {
			ID        int64
			UpdatedAt time.Time
		}
		if err := db.WithContext(ctx).Model(&Reminder{}).Select("id", "updated_at").Where("id IN ?", chunk).Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("check reminders: %w", err)
		}
		for _, r := range rows {
			out[r.ID] = r.UpdatedAt
		}
	}
	return out, nil
}

// duePage is how many due occurrences one query reads.
const duePage = 1000

// DueOccurrences returns the scheduled occurrences due by until, earliest
// first, at most upTo of them (read a page of duePage at a time), and
// whether more may be due beyond those.
func DueOccurrences(ctx context.Context, db *gorm.DB, until time.Time, upTo int) ([]Occurrence, bool, error) {
	var due []Occurrence
	for len(due) < upTo {
		q := db.WithContext(ctx).Where("state = ? AND fire_at <= ?", OccScheduled, until)
		if n := len(due); n > 0 {
			last := due[n-1]
			q = q.Where("fire_at > ? OR (fire_at = ? AND id > ?)", last.FireAt, last.FireAt, last.ID)
		}
		var page []Occurrence
		limit := min(duePage, upTo-len(due))
		if err := q.Order("fire_at, id").Limit(limit).Find(&page).Error; err != nil {
			return nil, false, err
		}
		due = append(due, page...)
		if len(page) < limit {
			return due, false, nil
		}
	}
	return due, true, nil
}

// CreateRuns inserts pending group runs, a thousand a transaction; an
// existing run keeps its state and takes the layout and slot given. It
// returns the occurrences whose runs it could not write, with the error.
func CreateRuns(ctx context.Context, db *gorm.DB, runs []GroupRun) (failed map[int64]bool, err error) {
	// A run prepared before under another layout (the preparation was
	// repeated after a regroup) takes the new one: the occurrence has not
	// fired, so no task of the old layout is out. Its slot is planned
	// again with the groups (and spread) of this preparation.
	for chunk := range slices.Chunk(runs, runsPerStatement) {
		werr := Transaction(ctx, db, func(tx *gorm.DB) error {
			return tx.Clauses(clause.OnConflict{
				Columns:   []clause.Column{{Name: "occurrence_id"}, {Name: "group_no"}},
				DoUpdates: clause.AssignmentColumns([]string{"layout", "slot_at"}),
			}).Create(&chunk).Error
		})
		if werr != nil {
			if failed == nil {
				failed = map[int64]bool{}
			}
			for _, r := range chunk {
				failed[r.OccurrenceID] = true
			}
			err = fmt.Errorf("create group runs: %w", werr)
		}
	}
	return failed, err
}
