package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Quiet modes of a reminder: what a user's quiet hours do to it.
const (
	QuietModeHold = "hold" // held until the quiet hours end, if still valid then
	QuietModeDrop = "drop" // recorded as quiet at once
)

// UserPreference is what one user of an app turned off, and when they
// sleep: the source of truth of the delivery policy's per-user settings,
// mirrored in Redis for the workers (package policy). Doc is policy's JSON
// form; Shard is the user's keyspace.UserShard, so that a shard lost in
// Redis is rebuilt from its own rows.
type UserPreference struct {
	AppID     int64  `gorm:"primaryKey;autoIncrement:false;index:ix_user_preference_shard,priority:1"`
	UserID    string `gorm:"primaryKey;size:191"`
	Shard     int    `gorm:"not null;index:ix_user_preference_shard,priority:2"`
	Doc       string `gorm:"type:text;not null"`
	UpdatedAt time.Time
}

// DeliverySettings are an app's delivery defaults (quiet hours, frequency
// caps), policy's JSON form in Doc, taken into each task at the fire.
type DeliverySettings struct {
	AppID     int64  `gorm:"primaryKey;autoIncrement:false"`
	Doc       string `gorm:"type:text;not null"`
	UpdatedAt time.Time
}

// QuietHold is one chunk's users held by their quiet hours, written by the
// worker before it checkpoints the chunk and released by the leader at
// ReleaseAt as a group of its own (group number -ID) whose task names the
// users. Chunk identifies the chunk and release instant, so a chunk sent
// again after a crash holds its users once.
type QuietHold struct {
	ID           int64     `gorm:"primaryKey"`
	OccurrenceID int64     `gorm:"not null;index"`
	Chunk        string    `gorm:"size:64;not null;uniqueIndex"`
	Users        string    `gorm:"type:mediumtext;not null"` // newline-separated: user IDs hold no spaces
	Count        int       `gorm:"not null"`
	ReleaseAt    time.Time `gorm:"not null;precision:3;index:ix_quiet_hold_due,priority:2"`
	Released     bool      `gorm:"not null;default:false;index:ix_quiet_hold_due,priority:1"`
	CreatedAt    time.Time
}

// migrateDeliveryPolicy adds reminders' category, critical and quiet mode,
// the policy counters of group runs and occurrences, and the tables of
// preferences, delivery settings and held chunks.
func migrateDeliveryPolicy(tx *gorm.DB) error {
	m := tx.Migrator()
	for _, c := range []struct {
		model any
		cols  []string
	}{
		{&Reminder{}, []string{"Category", "Critical", "Quiet"}},
		{&Occurrence{}, []string{"SkippedPreference", "Quiet", "Capped"}},
		{&GroupRun{}, []string{"SkippedPreference", "Quiet", "Capped"}},
	} {
		for _, col := range c.cols {
			if m.HasColumn(c.model, col) {
				continue // created by 0001 from the current struct
			}
			if err := m.AddColumn(c.model, col); err != nil {
				return fmt.Errorf("add %s: %w", col, err)
			}
		}
	}
	if IsMySQL(tx) {
		tx = tx.Set("gorm:table_options", "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
	}
	for _, t := range []any{&UserPreference{}, &DeliverySettings{}, &QuietHold{}} {
		if !tx.Migrator().HasTable(t) {
			if err := tx.Migrator().CreateTable(t); err != nil {
				return err
			}
		}
	}
	return nil
}

// Preferences returns a user's preferences document, or ErrNotFound.
func Preferences(ctx context.Context, db *gorm.DB, app int64, user string) (UserPreference, error) {
	var p UserPreference
	err := db.WithContext(ctx).Where("app_id = ? AND user_id = ?", app, user).First(&p).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return p, ErrNotFound
	}
	return p, err
}

// PutPreferences writes a user's preferences document.
func PutPreferences(ctx context.Context, db *gorm.DB, p UserPreference) error {
	return Transaction(ctx, db, func(tx *gorm.DB) error {
		return tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "app_id"}, {Name: "user_id"}},
			DoUpdates: clause.AssignmentColumns([]string{"doc", "shard", "updated_at"}),
		}).Create(&p).Error
	})
}

// AppHasPreferences reports whether any user of an app has stored
// preferences (one row read at most, by the primary key's prefix).
func AppHasPreferences(ctx context.Context, db *gorm.DB, app int64) (bool, error) {
	var ids []string
	if err := db.WithContext(ctx).Model(&UserPreference{}).Where("app_id = ?", app).Limit(1).Pluck("user_id", &ids).Error; err != nil {
		return false, fmt.Errorf("look for preferences: %w", err)
	}
	return len(ids) > 0, nil
}

// ShardPreferences returns the documents of an app's users in one shard,
// by user, to rebuild that shard's Redis mirror.
func ShardPreferences(ctx context.Context, db *gorm.DB, app int64, shard int) (map[string]string, error) {
	var rows []UserPreference
	if err := db.WithContext(ctx).Select("user_id, doc").Where("app_id = ? AND shard = ?", app, shard).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("load preferences of shard %d: %w", shard, err)
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.UserID] = r.Doc
	}
	return out, nil
}

// AppDeliverySettings returns an app's delivery settings document, "" when
// it has none.
func AppDeliverySettings(ctx context.Context, db *gorm.DB, app int64) (string, error) {
	var docs []string
	if err := db.WithContext(ctx).Model(&DeliverySettings{}).Where("app_id = ?", app).Pluck("doc", &docs).Error; err != nil {
		return "", fmt.Errorf("load delivery settings: %w", err)
	}
	if len(docs) == 0 {
		return "", nil
	}
	return docs[0], nil
}

// PutDeliverySettings writes an app's delivery settings document.
func PutDeliverySettings(ctx context.Context, db *gorm.DB, app int64, doc string) error {
	return Transaction(ctx, db, func(tx *gorm.DB) error {
		return tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "app_id"}},
			DoUpdates: clause.AssignmentColumns([]string{"doc", "updated_at"}),
		}).Create(&DeliverySettings{AppID: app, Doc: doc}).Error
	})
}

// AddQuietHolds records held chunks; a chunk already recorded (the same
// chunk sent again) is left as it is.
func AddQuietHolds(ctx context.Context, db *gorm.DB, holds []QuietHold) error {
	if len(holds) == 0 {
		return nil
	}
	return Transaction(ctx, db, func(tx *gorm.DB) error {
		return tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "chunk"}}, DoNothing: true}).Create(&holds).Error
	})
}

// DueQuietHolds returns up to limit held chunks whose release instant has
// come, oldest first.
func DueQuietHolds(ctx context.Context, db *gorm.DB, now time.Time, limit int) ([]QuietHold, error) {
	var out []QuietHold
	err := db.WithContext(ctx).Where("released = ? AND release_at <= ?", false, now).Order("release_at").Limit(limit).Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("load due quiet holds: %w", err)
	}
	return out, nil
}

// QuietHoldOf returns the held chunk a released group (number -ID) delivers.
func QuietHoldOf(ctx context.Context, db *gorm.DB, group int) (QuietHold, error) {
	var h QuietHold
	err := db.WithContext(ctx).First(&h, -int64(group)).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return h, ErrNotFound
	}
	return h, err
}

// ReleaseQuietHold turns a held chunk into a queued group run of its
// occurrence (group number -h.ID), counted in its groups, and marks it
// released; it reports false when it was released already.
func ReleaseQuietHold(ctx context.Context, db *gorm.DB, h QuietHold, now time.Time) (bool, error) {
	var done bool
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		done = false
		res := tx.Model(&QuietHold{}).Where("id = ? AND released = ?", h.ID, false).Update("released", true)
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		run := GroupRun{OccurrenceID: h.OccurrenceID, GroupNo: int(-h.ID), State: RunQueued, Attempts: 1, QueuedAt: now}
		if err := tx.Create(&run).Error; err != nil {
			return err
		}
		// A done occurrence is firing again until the released group
		// finishes (the tracker marks it done then).
		if err := tx.Model(&Occurrence{}).Where("id = ?", h.OccurrenceID).Updates(map[string]any{
			"groups_total": gorm.Expr("groups_total + 1"),
			"state":        gorm.Expr("CASE WHEN state = ? THEN ? ELSE state END", OccDone, OccFiring),
		}).Error; err != nil {
			return err
		}
		done = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("release quiet hold %d: %w", h.ID, err)
	}
	return done, nil
}
