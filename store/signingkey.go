package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// SigningKey is one of an app's keys for the tokens its users' clients
// connect to the gateway with. The app signs with its current key, the
// newest one without ExpiresAt; a rotation gives the others an ExpiresAt,
// from which the gateway refuses what they signed. Secret is sealed
// (package seal) and bound to the row's app and ID.
type SigningKey struct {
	// ID is the key's name, the kid of the tokens it signs.
	ID        string     `gorm:"primaryKey;size:32"`
	AppID     int64      `gorm:"not null;index:ix_signing_key_app"`
	Secret    string     `gorm:"size:255;not null"`
	CreatedAt time.Time  `gorm:"not null;precision:3"`
	ExpiresAt *time.Time `gorm:"precision:3"`
}

// ErrTooManySigningKeys is returned by RotateSigningKey when the app would
// have more signing keys in force than allowed.
var ErrTooManySigningKeys = errors.New("too many signing keys in force")

// SigningKeyByID returns the key named id, of whichever app.
func SigningKeyByID(ctx context.Context, db *gorm.DB, id string) (SigningKey, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var k SigningKey
	err := db.WithContext(ctx).Where("id = ?", id).First(&k).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return k, ErrNotFound
	}
	if err != nil {
		return k, fmt.Errorf("load signing key: %w", err)
	}
	return k, nil
}

// CurrentSigningKey returns the app's current key: ErrNotFound when it has
// none yet.
func CurrentSigningKey(ctx context.Context, db *gorm.DB, app int64) (SigningKey, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var k SigningKey
	err := db.WithContext(ctx).Where("app_id = ? AND expires_at IS NULL", app).Order("created_at DESC, id").First(&k).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return k, ErrNotFound
	}
	if err != nil {
		return k, fmt.Errorf("load current signing key: %w", err)
	}
	return k, nil
}

// SigningKeys returns the app's keys in force at now, newest first.
func SigningKeys(ctx context.Context, db *gorm.DB, app int64, now time.Time) ([]SigningKey, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var keys []SigningKey
	if err := db.WithContext(ctx).Where("app_id = ? AND (expires_at IS NULL OR expires_at > ?)", app, now).
		Order("created_at DESC, id").Find(&keys).Error; err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	return keys, nil
}

// FirstSigningKey returns the app's current key, or stores candidate as
// the app's first key when it has none. The app's row is locked meanwhile,
// so two callers at once make one key.
func FirstSigningKey(ctx context.Context, db *gorm.DB, candidate SigningKey) (SigningKey, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out SigningKey
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		if err := lockApp(tx, candidate.AppID); err != nil {
			return err
		}
		err := tx.Where("app_id = ? AND expires_at IS NULL", candidate.AppID).Order("created_at DESC, id").First(&out).Error
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			return err
		}
		out = candidate
		return tx.Create(&out).Error
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return out, fmt.Errorf("first signing key: %w", err)
	}
	return out, err
}

// RotateSigningKey stores next as the app's current key. The app's other
// keys in force expire at retireAt (those due to expire later are brought
// forward to it), keys expired before next.CreatedAt are deleted, and if
// the app would then have more than maxInForce keys in force the rotation
// is refused with ErrTooManySigningKeys. It returns the IDs of the keys whose
// expiry it set.
func RotateSigningKey(ctx context.Context, db *gorm.DB, next SigningKey, retireAt time.Time, maxInForce int) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	now := next.CreatedAt
	var retired []string
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		retired = nil
		if err := lockApp(tx, next.AppID); err != nil {
			return err
		}
		if err := tx.Where("app_id = ? AND expires_at <= ?", next.AppID, now).Delete(&SigningKey{}).Error; err != nil {
			return err
		}
		var keys []SigningKey
		if err := tx.Where("app_id = ?", next.AppID).Find(&keys).Error; err != nil {
			return err
		}
		inForce := 1 // next
		for _, k := range keys {
			if k.ExpiresAt == nil || k.ExpiresAt.After(retireAt) {
				retired = append(retired, k.ID)
			}
			if retireAt.After(now) {
				inForce++ // every remaining key stays in force for a while
			}
		}
		if inForce > maxInForce {
			return ErrTooManySigningKeys
		}
		if len(retired) > 0 {
			if err := tx.Model(&SigningKey{}).Where("id IN ?", retired).Update("expires_at", retireAt).Error; err != nil {
				return err
			}
		}
		return tx.Create(&next).Error
	})
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrTooManySigningKeys) {
		return nil, fmt.Errorf("rotate signing key: %w", err)
	}
	return retired, err
}

// lockApp locks the app's row until the transaction ends: ErrNotFound when
// there is no such app.
func lockApp(tx *gorm.DB, app int64) error {
	var a App
	err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Select("id").Where("id = ?", app).First(&a).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrNotFound
	}
	return err
}
