package store

import (
	"context"
	"errors"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// MaxContacts bounds a user's contacts.
const MaxContacts = 100

// ErrTooManyContacts: the user has MaxContacts contacts.
var ErrTooManyContacts = errors.New("too many contacts")

// Contacts returns up to limit of a user's contacts, by ID.
func Contacts(ctx context.Context, db *gorm.DB, app int64, user string, limit int) ([]string, error) {
	var ids []string
	err := db.WithContext(ctx).Model(&Contact{}).Where("app_id = ? AND user_id = ?", app, user).
		Order("contact_id").Limit(limit).Pluck("contact_id", &ids).Error
	return ids, err
}

// AddContact adds contact to a user's contacts and reports whether it is
// new; a user with MaxContacts contacts is ErrTooManyContacts.
func AddContact(ctx context.Context, db *gorm.DB, app int64, user, contact string) (created bool, err error) {
	err = Transaction(ctx, db, func(tx *gorm.DB) error {
		var n int64
		if err := tx.Model(&Contact{}).Where("app_id = ? AND user_id = ?", app, user).Count(&n).Error; err != nil {
			return err
		}
		if n >= MaxContacts {
			return ErrTooManyContacts
		}
		res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&Contact{AppID: app, UserID: user, ContactID: contact})
		created = res.RowsAffected > 0
		return res.Error
	})
	return created, err
}

// DeleteContact removes contact from a user's contacts, or returns
// ErrNotFound.
func DeleteContact(ctx context.Context, db *gorm.DB, app int64, user, contact string) error {
	res := db.WithContext(ctx).Where("app_id = ? AND user_id = ? AND contact_id = ?", app, user, contact).Delete(&Contact{})
	return affected(res)
}
