package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// DeliveryEventEndpoint is where an app's delivery events are posted (package
// deliveryevent): one per app. Secret is the endpoint's "whsec_..." signing
// secret sealed (package seal) and bound to the app by
// DeliveryEventSecretAAD.
type DeliveryEventEndpoint struct {
	AppID     int64     `gorm:"primaryKey;autoIncrement:false"`
	URL       string    `gorm:"size:2048;not null"`
	Secret    string    `gorm:"size:255;not null"`
	CreatedAt time.Time `gorm:"not null;precision:3"`
	UpdatedAt time.Time `gorm:"not null;precision:3"`
}

// DeliveryEventSecretAAD binds an endpoint's sealed secret to its app: a
// value copied to another app's row does not open there.
func DeliveryEventSecretAAD(app int64) []byte {
	return []byte("delivery-events:" + strconv.FormatInt(app, 10))
}

// migrateDeliveryEvents (0018) adds the endpoints' table and the
// occurrences' open count.
func migrateDeliveryEvents(tx *gorm.DB) error {
	m := tx.Migrator()
	if !m.HasTable(&DeliveryEventEndpoint{}) {
		t := tx
		if IsMySQL(tx) {
			t = tx.Set("gorm:table_options", "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
		}
		if err := t.Migrator().CreateTable(&DeliveryEventEndpoint{}); err != nil {
			return fmt.Errorf("create delivery_event_endpoints: %w", err)
		}
	}
	if !m.HasColumn(&Occurrence{}, "Opens") {
		if err := m.AddColumn(&Occurrence{}, "Opens"); err != nil {
			return fmt.Errorf("add occurrences.opens: %w", err)
		}
	}
	return nil
}

// PutDeliveryEventEndpoint registers or replaces the app's endpoint and
// tells whether it replaced one.
func PutDeliveryEventEndpoint(ctx context.Context, db *gorm.DB, e DeliveryEventEndpoint) (replaced bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = Transaction(ctx, db, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&DeliveryEventEndpoint{}).Where("app_id = ?", e.AppID).Count(&n).Error; err != nil {
			return err
		}
		replaced = n > 0
		return tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "app_id"}},
			DoUpdates: clause.AssignmentColumns([]string{"url", "secret", "updated_at"}),
		}).Create(&e).Error
	})
	if err != nil {
		return false, fmt.Errorf("put delivery event endpoint: %w", err)
	}
	return replaced, nil
}

// FindDeliveryEventEndpoint returns the app's endpoint, or ErrNotFound.
func FindDeliveryEventEndpoint(ctx context.Context, db *gorm.DB, app int64) (DeliveryEventEndpoint, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var e DeliveryEventEndpoint
	err := db.WithContext(ctx).Where("app_id = ?", app).First(&e).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return e, ErrNotFound
	}
	if err != nil {
		return e, fmt.Errorf("find delivery event endpoint: %w", err)
	}
	return e, nil
}

// DeleteDeliveryEventEndpoint removes the app's endpoint, or returns
// ErrNotFound.
func DeleteDeliveryEventEndpoint(ctx context.Context, db *gorm.DB, app int64) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var n int64
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		res := tx.Where("app_id = ?", app).Delete(&DeliveryEventEndpoint{})
		n = res.RowsAffected
		return res.Error
	})
	if err != nil {
		return fmt.Errorf("delete delivery event endpoint: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// DeliveryEventEndpoints returns every app's endpoint, at most one per app.
func DeliveryEventEndpoints(ctx context.Context, db *gorm.DB) ([]DeliveryEventEndpoint, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var out []DeliveryEventEndpoint
	if err := db.WithContext(ctx).Order("app_id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list delivery event endpoints: %w", err)
	}
	return out, nil
}

// AddOpens adds n to the open count of the app's occurrence.
func AddOpens(ctx context.Context, db *gorm.DB, app, occurrence, n int64) error {
	if n == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := Transaction(ctx, db, func(tx *gorm.DB) error {
		return tx.Exec("UPDATE occurrences SET opens = opens + ? WHERE id = ? AND reminder_id IN (SELECT id FROM reminders WHERE app_id = ?)",
			n, occurrence, app).Error
	})
	if err != nil {
		return fmt.Errorf("add opens: %w", err)
	}
	return nil
}
