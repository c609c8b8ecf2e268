package store

import (
	"context"
	"errors"

	"gorm.io/gorm"
)

// PutDevice registers d (its app, user and device IDs, platform, token,
// sealed secret, locale and app version), replacing the device's row if it
// has one; registering again enables a device a provider had refused.
func PutDevice(ctx context.Context, db *gorm.DB, in Device) (d Device, created bool, err error) {
	err = Transaction(ctx, db, func(tx *gorm.DB) error {
		d, created = Device{}, false
		err := tx.Where("app_id = ? AND user_id = ? AND device_id = ?", in.AppID, in.UserID, in.DeviceID).First(&d).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			created = true
			d = Device{AppID: in.AppID, UserID: in.UserID, DeviceID: in.DeviceID}
		} else if err != nil {
			return err
		}
		d.Platform, d.Token, d.Secret, d.Locale, d.AppVersion = in.Platform, in.Token, in.Secret, in.Locale, in.AppVersion
		d.DisabledAt, d.DisabledReason = nil, ""
		return tx.Save(&d).Error
	})
	return d, created, err
}

// DeleteDevice deletes a user's device, or returns ErrNotFound.
func DeleteDevice(ctx context.Context, db *gorm.DB, app int64, user, device string) error {
	res := db.WithContext(ctx).Where("app_id = ? AND user_id = ? AND device_id = ?", app, user, device).Delete(&Device{})
	return affected(res)
}

// UserDevices returns up to limit of a user's devices, by device ID.
func UserDevices(ctx context.Context, db *gorm.DB, app int64, user string, limit int) ([]Device, error) {
	var rows []Device
	err := db.WithContext(ctx).Where("app_id = ? AND user_id = ?", app, user).
		Order("device_id").Limit(limit).Find(&rows).Error
	return rows, err
}

// affected is res's error, or ErrNotFound if it touched no row.
func affected(res *gorm.DB) error {
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}
