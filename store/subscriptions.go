package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
)

// subscribeBatch is how many subscriptions go in one statement: 5 values
// a row, 50,000 placeholders, within the 65,535 MySQL takes, so that a bulk
// request of 10,000 users (the API's default most) is one statement.
// SQLite takes 32,766, so it gets batches of 6,000.
const (
	subscribeBatch       = 10000
	subscribeBatchSQLite = 6000
)

// Subscribe stores subscriptions of one reminder (a user's replaces the
// one it has) in one transaction, and returns those the users had before,
// for the index changes to apply once it commits.
//
// Most bulk registrations are of new users, so each batch is first
// inserted as new rows only, which needs no read; if some of its users
// were subscribed already, that insert is rolled back to a savepoint (the
// rows it found stay locked) and the batch reads the rows it replaces, then
// upserts.
//
// The statements are written here and run on the transaction's connection
// rather than through gorm's Create or Exec: for 10,000 rows gorm's
// reflection over the model, or its walk over 50,000 placeholders, cost as
// much CPU as the rest of the request. They are sent with their values
// interpolated (see Open): server-side prepared statements of 50,000
// placeholders cost MariaDB more CPU a row, not less.
func Subscribe(ctx context.Context, db *gorm.DB, reminder int64, subs []Subscription) ([]Subscription, error) {
	batch := subscribeBatch
	if !IsMySQL(db) {
		batch = subscribeBatchSQLite
	}
	now := db.NowFunc()
	var old []Subscription
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		old = nil
		for start := 0; start < len(subs); start += batch {
			part := subs[start:min(start+batch, len(subs))]
			if err := tx.SavePoint("subscribe").Error; err != nil {
				return err
			}
			q, args := insertSubscriptions(tx, part, now, false)
			inserted, err := exec(tx, q, args)
			if err != nil {
				return err
			}
			if inserted == int64(len(part)) {
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
			q, args = insertSubscriptions(tx, part, now, true)
			if _, err := exec(tx, q, args); err != nil {
				return err
			}
		}
		return nil
	})
	return old, err
}

// exec runs q on tx's connection and returns the rows it affected. It is
// traced to gorm's logger as gorm's own statements are (a failed or slow
// one is logged, with its placeholders, never its values).
func exec(tx *gorm.DB, q string, args []any) (int64, error) {
	begin := time.Now()
	var rows int64
	res, err := tx.Statement.ConnPool.ExecContext(tx.Statement.Context, q, args...)
	if err == nil {
		rows, err = res.RowsAffected()
	}
	tx.Logger.Trace(tx.Statement.Context, begin, func() (string, int64) { return q, rows }, err)
	return rows, err
}

// insertSubscriptions returns one multi-row INSERT of subs and its values:
// with upsert false it skips the users already subscribed (RowsAffected is
// then the rows inserted); with upsert true it moves them to their new
// location and group, keeping when they first subscribed. A subscription
// without CreatedAt is created at now.
func insertSubscriptions(tx *gorm.DB, subs []Subscription, now time.Time, upsert bool) (string, []any) {
	mysql := IsMySQL(tx)
	var b strings.Builder
	b.Grow(100 + 12*len(subs))
	b.WriteString("INSERT INTO subscriptions (reminder_id, user_id, location_id, group_no, created_at) VALUES ")
	args := make([]any, 0, 5*len(subs))
	for i, s := range subs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?)")
		at := s.CreatedAt
		if at.IsZero() {
			at = now
		}
		args = append(args, s.ReminderID, s.UserID, s.LocationID, s.GroupNo, at)
	}
	// Not INSERT IGNORE: it would also turn a refused value (a user ID
	// too long) into a warning and store it cut. A row left as it is
	// counts 0 in RowsAffected, an inserted one 1.
	switch {
	case upsert && mysql:
		b.WriteString(" ON DUPLICATE KEY UPDATE location_id = VALUES(location_id), group_no = VALUES(group_no)")
	case upsert:
		b.WriteString(" ON CONFLICT (reminder_id, user_id) DO UPDATE SET location_id = excluded.location_id, group_no = excluded.group_no")
	case mysql:
		b.WriteString(" ON DUPLICATE KEY UPDATE reminder_id = reminder_id")
	default:
		b.WriteString(" ON CONFLICT (reminder_id, user_id) DO NOTHING")
	}
	return b.String(), args
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

// FiringOf reports, for each of occs, whether another occurrence of its
// reminder at its location is being delivered, in one query per thousand.
func FiringOf(ctx context.Context, db *gorm.DB, occs []Occurrence) (map[int64]bool, error) {
	type pair struct{ reminder, location int64 }
	firing := map[pair][]int64{}
	for chunk := range slices.Chunk(occs, 1000) {
		var reminders, locations []int64
		for _, o := range chunk {
			reminders = append(reminders, o.ReminderID)
			locations = append(locations, o.LocationID)
		}
		var rows []Occurrence
		if err := db.WithContext(ctx).Select("id", "reminder_id", "location_id").
			Where("state = ? AND reminder_id IN ? AND location_id IN ?", OccFiring, reminders, locations).
			Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("check fires in flight: %w", err)
		}
		for _, r := range rows {
			k := pair{r.ReminderID, r.LocationID}
			firing[k] = append(firing[k], r.ID)
		}
	}
	busy := make(map[int64]bool, len(occs))
	for _, o := range occs {
		for _, id := range firing[pair{o.ReminderID, o.LocationID}] {
			busy[o.ID] = busy[o.ID] || id != o.ID
		}
	}
	return busy, nil
}
