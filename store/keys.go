package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// API keys are "chk_" and 48 hex digits (24 random bytes). The row keeps the
// key's SHA-256 and its first KeyPrefixLen characters, which is what lists
// show; the key itself is shown once, when it is created.
//
// A key works until it is revoked. Revoking sets RevokedAt, or, for a
// rotation that lets clients move to a new key first, ExpiresAt a grace
// period ahead; the row stays, for the record.
const (
	// KeyScheme starts every API key.
	KeyScheme = "chk_"
	// KeyPrefixLen is how much of a key is stored in the clear and shown.
	KeyPrefixLen = 12
	// MaxNameLen bounds app and key names, in characters (the columns' size).
	MaxNameLen = 100
	// MaxActiveKeys bounds an app's keys that are neither revoked nor
	// expired.
	MaxActiveKeys = 100
	// MaxKeyGrace bounds how long a revoked key may go on working.
	MaxKeyGrace = 30 * 24 * time.Hour
	// KeyTouchInterval is how stale APIKey.LastUsedAt may be: a key's use is
	// written at most once per interval.
	KeyTouchInterval = time.Minute
)

// Errors of the key operations that callers answer differently.
var (
	// ErrTooManyKeys: the app has MaxActiveKeys active keys.
	ErrTooManyKeys = errors.New("too many active keys")
	// ErrAmbiguous: a name or prefix matches more than one row.
	ErrAmbiguous = errors.New("ambiguous")
)

// HashKey returns the hex SHA-256 of an API key, as it is stored.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Active reports whether the key works at now.
func (k APIKey) Active(now time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt))
}

// CheckName tells what is wrong with an app or key name, or returns nil:
// at most MaxNameLen characters of UTF-8, without control characters.
func CheckName(name string) error {
	switch {
	case !utf8.ValidString(name):
		return errors.New("must be UTF-8")
	case utf8.RuneCountInString(name) > MaxNameLen:
		return fmt.Errorf("must be at most %d characters", MaxNameLen)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return errors.New("must not contain control characters")
	}
	return nil
}

func newKey() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new key: %w", err)
	}
	return KeyScheme + hex.EncodeToString(b[:]), nil
}

// CreateApp creates an app named name with one key named keyName, and
// returns the key, which is not stored.
func CreateApp(ctx context.Context, db *gorm.DB, name, keyName string) (App, APIKey, string, error) {
	var app App
	var k APIKey
	var key string
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		app = App{Name: name, CreatedAt: stored(time.Now())}
		if err := tx.Create(&app).Error; err != nil {
			return err
		}
		var err error
		k, key, err = insertKey(tx, app.ID, keyName, app.CreatedAt)
		return err
	})
	if err != nil {
		return App{}, APIKey{}, "", fmt.Errorf("create app: %w", err)
	}
	return app, k, key, nil
}

// CreateKey adds a key named name to app and returns it; the key itself is
// not stored. ErrNotFound if there is no such app, ErrTooManyKeys if it has
// MaxActiveKeys active keys.
func CreateKey(ctx context.Context, db *gorm.DB, app int64, name string, now time.Time) (APIKey, string, error) {
	var k APIKey
	var key string
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		// The app row is locked so that concurrent creations count each
		// other (SQLite has one writer anyway).
		q := tx
		if IsMySQL(tx) {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		var a App
		if err := q.Where("id = ?", app).Take(&a).Error; err != nil {
			return notFound(err)
		}
		var n int64
		if err := tx.Model(&APIKey{}).Where("app_id = ?", app).Scopes(activeAt(now)).Count(&n).Error; err != nil {
			return err
		}
		if n >= MaxActiveKeys {
			return ErrTooManyKeys
		}
		var err error
		k, key, err = insertKey(tx, app, name, stored(now))
		return err
	})
	if err != nil {
		return APIKey{}, "", fmt.Errorf("create key: %w", err)
	}
	return k, key, nil
}

func insertKey(tx *gorm.DB, app int64, name string, now time.Time) (APIKey, string, error) {
	key, err := newKey()
	if err != nil {
		return APIKey{}, "", err
	}
	k := APIKey{AppID: app, Hash: HashKey(key), Prefix: key[:KeyPrefixLen], Name: name, CreatedAt: now}
	if err := tx.Create(&k).Error; err != nil {
		return APIKey{}, "", err
	}
	return k, key, nil
}

// stored returns t as the database keeps it: UTC, to the millisecond, so
// that what a write returns equals what a read returns later.
func stored(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func activeAt(now time.Time) func(*gorm.DB) *gorm.DB {
	return func(q *gorm.DB) *gorm.DB {
		return q.Where("revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)", now)
	}
}

func notFound(err error) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrNotFound
	}
	return err
}

// Apps returns up to limit apps by ID, after the app with ID after.
func Apps(ctx context.Context, db *gorm.DB, after int64, limit int) ([]App, error) {
	apps := []App{}
	if err := db.WithContext(ctx).Where("id > ?", after).Order("id").Limit(limit).Find(&apps).Error; err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	return apps, nil
}

// FindApp returns the app with ID id, or ErrNotFound.
func FindApp(ctx context.Context, db *gorm.DB, id int64) (App, error) {
	var a App
	if err := db.WithContext(ctx).Where("id = ?", id).Take(&a).Error; err != nil {
		return App{}, fmt.Errorf("find app %d: %w", id, notFound(err))
	}
	return a, nil
}

// FindAppNamed returns the one app named name: ErrNotFound if there is
// none, ErrAmbiguous if names are shared (app names are not unique).
func FindAppNamed(ctx context.Context, db *gorm.DB, name string) (App, error) {
	var apps []App
	if err := db.WithContext(ctx).Where("name = ?", name).Order("id").Limit(2).Find(&apps).Error; err != nil {
		return App{}, fmt.Errorf("find app %q: %w", name, err)
	}
	switch len(apps) {
	case 0:
		return App{}, fmt.Errorf("find app %q: %w", name, ErrNotFound)
	case 1:
		return apps[0], nil
	}
	return App{}, fmt.Errorf("find app %q: %w", name, ErrAmbiguous)
}

// Keys returns up to limit of app's keys, revoked or not, by ID, after the
// key with ID after.
func Keys(ctx context.Context, db *gorm.DB, app, after int64, limit int) ([]APIKey, error) {
	keys := []APIKey{}
	err := db.WithContext(ctx).Where("app_id = ? AND id > ?", app, after).Order("id").Limit(limit).Find(&keys).Error
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return keys, nil
}

// FindKey returns app's key with ID id, or ErrNotFound (also for another
// app's key).
func FindKey(ctx context.Context, db *gorm.DB, app, id int64) (APIKey, error) {
	var k APIKey
	if err := db.WithContext(ctx).Where("app_id = ? AND id = ?", app, id).Take(&k).Error; err != nil {
		return APIKey{}, fmt.Errorf("find key %d: %w", id, notFound(err))
	}
	return k, nil
}

// FindKeyByHash returns app's key whose SHA-256 is hash, revoked or not, or
// ErrNotFound.
func FindKeyByHash(ctx context.Context, db *gorm.DB, app int64, hash string) (APIKey, error) {
	var k APIKey
	if err := db.WithContext(ctx).Where("app_id = ? AND hash = ?", app, hash).Take(&k).Error; err != nil {
		return APIKey{}, fmt.Errorf("find key: %w", notFound(err))
	}
	return k, nil
}

// FindKeyByPrefix returns app's one key whose stored prefix is prefix:
// ErrNotFound if none, ErrAmbiguous if two keys share it (one in 2^32).
func FindKeyByPrefix(ctx context.Context, db *gorm.DB, app int64, prefix string) (APIKey, error) {
	var keys []APIKey
	if err := db.WithContext(ctx).Where("app_id = ? AND prefix = ?", app, prefix).Limit(2).Find(&keys).Error; err != nil {
		return APIKey{}, fmt.Errorf("find key %s: %w", prefix, err)
	}
	switch len(keys) {
	case 0:
		return APIKey{}, fmt.Errorf("find key %s: %w", prefix, ErrNotFound)
	case 1:
		return keys[0], nil
	}
	return APIKey{}, fmt.Errorf("find key %s: %w", prefix, ErrAmbiguous)
}

// RevokeKey revokes app's key id and returns it as stored: with grace 0 it
// stops working at now (RevokedAt), otherwise at now+grace (ExpiresAt),
// unless it stops earlier already. Revoking a revoked key changes nothing.
// ErrNotFound if app has no such key.
func RevokeKey(ctx context.Context, db *gorm.DB, app, id int64, now time.Time, grace time.Duration) (APIKey, error) {
	now = stored(now)
	var k APIKey
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		k = APIKey{}
		if err := tx.Where("app_id = ? AND id = ?", app, id).Take(&k).Error; err != nil {
			return notFound(err)
		}
		if k.RevokedAt != nil {
			return nil
		}
		if grace == 0 {
			k.RevokedAt = &now
			return tx.Model(&k).Update("revoked_at", now).Error
		}
		at := now.Add(grace)
		if k.ExpiresAt != nil && !at.Before(*k.ExpiresAt) {
			return nil
		}
		k.ExpiresAt = &at
		return tx.Model(&k).Update("expires_at", at).Error
	})
	if err != nil {
		return APIKey{}, fmt.Errorf("revoke key %d: %w", id, err)
	}
	return k, nil
}

// ActiveKey returns the key whose SHA-256 is hash if it works at now, or
// ErrNotFound.
func ActiveKey(ctx context.Context, db *gorm.DB, hash string, now time.Time) (APIKey, error) {
	var k APIKey
	if err := db.WithContext(ctx).Where("hash = ?", hash).Scopes(activeAt(now)).Take(&k).Error; err != nil {
		return APIKey{}, notFound(err)
	}
	return k, nil
}

// TouchKey records that key id was used at now, unless a use less than
// KeyTouchInterval before was recorded already (by any replica).
func TouchKey(ctx context.Context, db *gorm.DB, id int64, now time.Time) error {
	now = stored(now)
	err := db.WithContext(ctx).Model(&APIKey{}).
		Where("id = ? AND (last_used_at IS NULL OR last_used_at < ?)", id, now.Add(-KeyTouchInterval)).
		Update("last_used_at", now).Error
	if err != nil {
		return fmt.Errorf("touch key %d: %w", id, err)
	}
	return nil
}
