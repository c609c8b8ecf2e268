package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Console roles: a viewer looks, an editor also changes.
const (
	RoleViewer = "viewer"
	RoleEditor = "editor"
)

// ConsoleUser signs in to the console of one app. Email is unique over all
// apps, so that signing in needs no app name; PasswordHash is a PHC string
// (package console hashes with argon2id).
type ConsoleUser struct {
	ID           int64  `gorm:"primaryKey"`
	AppID        int64  `gorm:"not null;index"`
	Email        string `gorm:"size:254;not null;uniqueIndex"`
	PasswordHash string `gorm:"size:255;not null"`
	Role         string `gorm:"size:16;not null"`
	CreatedAt    time.Time
}

// ConsoleSession is a signed-in browser. Only the SHA-256 of the session
// cookie is stored, so a copy of the table opens no session.
type ConsoleSession struct {
	Hash      string    `gorm:"primaryKey;size:64"`
	UserID    int64     `gorm:"not null;index"`
	CSRF      string    `gorm:"size:64;not null"`
	ExpiresAt time.Time `gorm:"not null;precision:3;index"`
	CreatedAt time.Time
}

// ErrExists is returned for a name that is taken.
var ErrExists = errors.New("already exists")

// CreateConsoleUser adds a console user to app.
func CreateConsoleUser(ctx context.Context, db *gorm.DB, u ConsoleUser) (ConsoleUser, error) {
	u.Email = strings.ToLower(u.Email)
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&ConsoleUser{}).Where("email = ?", u.Email).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("console user %q: %w", u.Email, ErrExists)
		}
		u.ID = 0
		return tx.Create(&u).Error
	})
	return u, err
}

// FindConsoleUser returns the console user with email.
func FindConsoleUser(ctx context.Context, db *gorm.DB, email string) (ConsoleUser, error) {
	var u ConsoleUser
	err := db.WithContext(ctx).Where("email = ?", strings.ToLower(email)).Take(&u).Error
	return u, notFound(err)
}

// CreateConsoleSession stores a session.
func CreateConsoleSession(ctx context.Context, db *gorm.DB, s ConsoleSession) error {
	s.ExpiresAt = stored(s.ExpiresAt)
	return Transaction(ctx, db, func(tx *gorm.DB) error { return tx.Create(&s).Error })
}

// ConsoleSessionUser returns the session of hash, unexpired at now, and its
// user.
func ConsoleSessionUser(ctx context.Context, db *gorm.DB, hash string, now time.Time) (ConsoleSession, ConsoleUser, error) {
	var s ConsoleSession
	var u ConsoleUser
	err := db.WithContext(ctx).Where("hash = ? AND expires_at > ?", hash, stored(now)).Take(&s).Error
	if err == nil {
		err = db.WithContext(ctx).Where("id = ?", s.UserID).Take(&u).Error
	}
	return s, u, notFound(err)
}

// DeleteConsoleSession ends a session, and every expired one with it.
func DeleteConsoleSession(ctx context.Context, db *gorm.DB, hash string, now time.Time) error {
	return Transaction(ctx, db, func(tx *gorm.DB) error {
		return tx.Where("hash = ? OR expires_at <= ?", hash, stored(now)).Delete(&ConsoleSession{}).Error
	})
}

// ReminderSummary is a reminder as the console lists it.
type ReminderSummary struct {
	Reminder
	Subscribers int64
	Locations   int64
}

// ReminderFilter selects reminders for the console's list.
type ReminderFilter struct {
	// Search matches the key or the title, as a substring.
	Search string
	// After is the key the page starts after.
	After string
}

// SearchReminders returns up to limit reminders of app in key order, with
// their subscriber and location counts.
func SearchReminders(ctx context.Context, db *gorm.DB, app int64, f ReminderFilter, limit int) ([]ReminderSummary, error) {
	q := db.WithContext(ctx).Model(&Reminder{}).Where("app_id = ? AND `key` > ?", app, f.After)
	if f.Search != "" {
		// "!" escapes the wildcards: one escape character both MySQL and
		// SQLite read the same way.
		like := "%" + strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(f.Search) + "%"
		q = q.Where("(`key` LIKE ? ESCAPE '!' OR title LIKE ? ESCAPE '!')", like, like)
	}
	var rems []Reminder
	if err := q.Order(clause.OrderByColumn{Column: clause.Column{Name: "key"}}).Limit(limit).Find(&rems).Error; err != nil {
		return nil, err
	}
	out := make([]ReminderSummary, len(rems))
	if len(rems) == 0 {
		return out, nil
	}
	ids := make([]int64, len(rems))
	for i, r := range rems {
		ids[i] = r.ID
		out[i].Reminder = r
	}
	subs, err := countBy(ctx, db, &Subscription{}, ids)
	if err != nil {
		return nil, err
	}
	locs, err := countBy(ctx, db, &ReminderLocation{}, ids)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Subscribers, out[i].Locations = subs[out[i].ID], locs[out[i].ID]
	}
	return out, nil
}

func countBy(ctx context.Context, db *gorm.DB, model any, reminders []int64) (map[int64]int64, error) {
	var rows []struct {
		ReminderID int64
		N          int64
	}
	err := db.WithContext(ctx).Model(model).Select("reminder_id, COUNT(*) AS n").
		Where("reminder_id IN ?", reminders).Group("reminder_id").Scan(&rows).Error
	out := make(map[int64]int64, len(rows))
	for _, r := range rows {
		out[r.ReminderID] = r.N
	}
	return out, err
}

// LocationSummary is a location with its subscriber and reminder counts.
type LocationSummary struct {
	ID          int64
	Name        string
	Zone        string
	Reminders   int64
	Subscribers int64
	// The location's coordinates and prayer convention override.
	Latitude, Longitude, Elevation   *float64
	Method, Madhab, HighLatitudeRule string
}

// LocationSummaries returns up to limit of app's locations after the name
// after, in name order.
func LocationSummaries(ctx context.Context, db *gorm.DB, app int64, after string, limit int) ([]LocationSummary, error) {
	var out []LocationSummary
	err := db.WithContext(ctx).Table("locations AS l").
		Select("l.id, l.name, l.zone, l.latitude, l.longitude, l.elevation, l.method, l.madhab, l.high_latitude_rule, "+
			"(SELECT COUNT(*) FROM reminder_locations rl WHERE rl.location_id = l.id) AS reminders, "+
			"(SELECT COUNT(*) FROM subscriptions s WHERE s.location_id = l.id) AS subscribers").
		Where("l.app_id = ? AND l.name > ?", app, after).Order("l.name").Limit(limit).Scan(&out).Error
	return out, err
}

// AudienceRow counts a reminder's subscribers at one location who have a
// device of one platform ("" for subscribers without a device).
type AudienceRow struct {
	Location string
	Zone     string
	Platform string
	Users    int64
}

// Audience returns how many of a reminder's subscribers each location has,
// per device platform.
func Audience(ctx context.Context, db *gorm.DB, app, reminder int64) ([]AudienceRow, error) {
	var out []AudienceRow
	err := db.WithContext(ctx).Table("subscriptions AS s").
		Select("l.name AS location, l.zone, COALESCE(d.platform, '') AS platform, COUNT(DISTINCT s.user_id) AS users").
		Joins("JOIN locations l ON l.id = s.location_id").
		Joins("LEFT JOIN devices d ON d.app_id = ? AND d.user_id = s.user_id AND d.disabled_at IS NULL", app).
		Where("s.reminder_id = ?", reminder).Group("l.name, l.zone, COALESCE(d.platform, '')").
		Order("l.name, platform").Scan(&out).Error
	return out, err
}

// NextFire is a reminder's next planned fire.
type NextFire struct {
	ReminderID     int64
	FireAt         time.Time
	Location, Zone string
}

// NextFires returns, of each reminder that has one, the first scheduled
// occurrence after now (one location's, when several fire at once). The
// planner plans over its horizon (26 hours by default), so a reminder
// firing later has none yet.
func NextFires(ctx context.Context, db *gorm.DB, reminders []int64, now time.Time) (map[int64]NextFire, error) {
	out := map[int64]NextFire{}
	if len(reminders) == 0 {
		return out, nil
	}
	var rows []NextFire
	first := db.Model(&Occurrence{}).Select("reminder_id, MIN(fire_at) AS fire_at").
		Where("reminder_id IN ? AND state = ? AND fire_at > ? AND test_user = ''", reminders, OccScheduled, stored(now)).Group("reminder_id")
	err := db.WithContext(ctx).Table("occurrences AS o").Select("o.reminder_id, o.fire_at, l.name AS location, l.zone").
		Joins("JOIN (?) AS x ON x.reminder_id = o.reminder_id AND x.fire_at = o.fire_at", first).
		Joins("JOIN locations l ON l.id = o.location_id").
		Where("o.state = ? AND o.test_user = ''", OccScheduled).Order("l.name").Scan(&rows).Error
	for _, r := range rows {
		if _, ok := out[r.ReminderID]; !ok {
			out[r.ReminderID] = r
		}
	}
	return out, err
}

// SubscriberCount is how many users a reminder has.
func SubscriberCount(ctx context.Context, db *gorm.DB, reminder int64) (int64, error) {
	var n int64
	err := db.WithContext(ctx).Model(&Subscription{}).Where("reminder_id = ?", reminder).Count(&n).Error
	return n, err
}
