package store

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// Audit actor kinds: who made a change.
const (
	ActorKey     = "api_key"      // an API key, by its ID
	ActorConsole = "console_user" // a console user, by email
)

// AuditEntry records one change to what an app defines: who (an API key or
// a console user), what (the operation, the resource, and for reminders a
// diff of their fields before and after), and when.
type AuditEntry struct {
	ID        int64  `gorm:"primaryKey"`
	AppID     int64  `gorm:"not null;index:ix_audit_app,priority:1"`
	ActorKind string `gorm:"size:16;not null"`
	ActorID   string `gorm:"size:254;not null"`
	// Action is the operation, such as "PUT /v1/reminders/{key}".
	Action   string `gorm:"size:100;not null"`
	Resource string `gorm:"size:500;not null"`
	// Diff is a JSON object of the changed fields, each {"before": ...,
	// "after": ...}; empty when the resource has no field form.
	Diff      string    `gorm:"type:mediumtext"`
	CreatedAt time.Time `gorm:"not null;precision:3"`
}

// RecordAudit stores an entry.
func RecordAudit(ctx context.Context, db *gorm.DB, e AuditEntry) error {
	e.CreatedAt = stored(e.CreatedAt)
	return Transaction(ctx, db, func(tx *gorm.DB) error { e.ID = 0; return tx.Create(&e).Error })
}

// Audit returns up to limit of app's entries, newest first, older than the
// entry before if it is not 0.
func Audit(ctx context.Context, db *gorm.DB, app, before int64, limit int) ([]AuditEntry, error) {
	q := db.WithContext(ctx).Where("app_id = ?", app)
	if before > 0 {
		q = q.Where("id < ?", before)
	}
	var out []AuditEntry
	err := q.Order("id DESC").Limit(limit).Find(&out).Error
	return out, err
}
