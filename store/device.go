package store

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"time"

	"gorm.io/gorm"

	"github.com/chime-dev/chime/seal"
)

// Device platforms and the channel each is delivered through.
const (
	PlatformIOS     = "ios"     // APNs
	PlatformAndroid = "android" // FCM
	PlatformWeb     = "web"     // a signed webhook to the device's endpoint
)

// Device is one of a user's devices, registered by the app. A user gets one
// push per enabled device. A device the provider reports unregistered or
// invalid is disabled (DisabledAt, DisabledReason) and not sent to again
// until the app registers it again.
type Device struct {
	ID    int64 `gorm:"primaryKey"`
	AppID int64 `gorm:"not null;uniqueIndex:ux_device,priority:1"`
	// UserID comes before DeviceID in the unique index, so a chunk's devices
	// are read with one range scan per user: app_id = ? AND user_id IN (...).
	UserID   string `gorm:"size:191;not null;uniqueIndex:ux_device,priority:2"`
	DeviceID string `gorm:"size:191;not null;uniqueIndex:ux_device,priority:3"`
	Platform string `gorm:"size:16;not null"`
	// Token is the APNs device token, the FCM registration token, or the
	// webhook endpoint URL of a web device.
	Token string `gorm:"size:4096;not null"`
	// Secret signs a web device's webhooks: sealed under CHIME_SECRET_KEYS
	// (package seal; 190 bytes at most for the longest secret and key ID),
	// or, stored before sealing, the "whsec_..." value itself. Empty for
	// other platforms.
	Secret         string     `gorm:"size:255;not null;default:''"`
	Locale         string     `gorm:"size:35;not null;default:''"`
	AppVersion     string     `gorm:"size:50;not null;default:''"`
	DisabledAt     *time.Time `gorm:"precision:3"`
	DisabledReason string     `gorm:"size:100;not null;default:''"`
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// DeliveryCount is what one chunk of one group did on one channel. A chunk
// is named by its first user, so a chunk sent again (a worker crash, a
// retry) overwrites its row instead of adding to the counts. Channel "none"
// counts users without an enabled device (Skipped).
type DeliveryCount struct {
	OccurrenceID int64  `gorm:"primaryKey;autoIncrement:false"`
	GroupNo      int    `gorm:"primaryKey;autoIncrement:false"`
	Chunk        string `gorm:"primaryKey;size:191"`
	Channel      string `gorm:"primaryKey;size:16"`
	Sent         int    `gorm:"not null"`
	Failed       int    `gorm:"not null"`
	Expired      int    `gorm:"not null"`
	Skipped      int    `gorm:"not null"`
	UpdatedAt    time.Time
}

// DeliveryFailure is one device of one occurrence that was not sent to, and
// the reason. Written once per (occurrence, user, device): a retry of the
// chunk replaces it.
type DeliveryFailure struct {
	OccurrenceID int64  `gorm:"primaryKey;autoIncrement:false"`
	UserID       string `gorm:"primaryKey;size:191"`
	DeviceID     string `gorm:"primaryKey;size:191"`
	GroupNo      int    `gorm:"not null"`
	Channel      string `gorm:"size:16;not null"`
	Reason       string `gorm:"size:200;not null"`
	CreatedAt    time.Time
}

// DeviceSecretAAD binds a device's sealed secret to its row (seal's
// additional data), as device:<app>:"<user>":"<device>": a value copied to
// another device does not open there. The IDs are quoted because they may
// hold colons.
func DeviceSecretAAD(app int64, user, device string) []byte {
	return []byte("device:" + strconv.FormatInt(app, 10) + ":" + strconv.Quote(user) + ":" + strconv.Quote(device))
}

// widenDeviceSecret makes devices.secret fit sealed values (migration
// 0008): 200 bytes held the plaintext secrets with room for little else.
// SQLite does not enforce the size.
func widenDeviceSecret(tx *gorm.DB) error {
	if !IsMySQL(tx) {
		return nil
	}
	return tx.Migrator().AlterColumn(&Device{}, "Secret")
}

// DefaultResealBatch is how many devices ResealDeviceSecrets re-seals per
// transaction.
const DefaultResealBatch = 500

// ResealDeviceSecrets seals again, under k's current key, every web device
// secret not sealed with it: those stored before sealing (plaintext) and
// those sealed with an older key, so the older key can then be dropped. It
// works batch devices at a time (DefaultResealBatch if 0), one transaction
// each. A secret re-registered meanwhile is left as it now is; one that does
// not open (sealed with a key k does not have, or altered) is left too and
// counted in failed.
func ResealDeviceSecrets(ctx context.Context, db *gorm.DB, k *seal.Keyring, batch int) (resealed, failed int, err error) {
	if k == nil {
		return 0, 0, seal.ErrNoKeys
	}
	batch = cmp.Or(batch, DefaultResealBatch)
	current := seal.Prefix + k.Current() + ":"
	for after := int64(0); ; {
		n, f, last, err := resealBatch(ctx, db, k, current, after, batch)
		resealed, failed = resealed+n, failed+f
		if err != nil || last == 0 {
			return resealed, failed, err
		}
		after = last
	}
}

// resealBatch re-seals the next batch devices after ID after whose secret
// does not start with current; last is the batch's last ID, 0 when none
// was left.
func resealBatch(ctx context.Context, db *gorm.DB, k *seal.Keyring, current string, after int64, batch int) (resealed, failed int, last int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var rows []Device
	err = db.WithContext(ctx).Select("id", "app_id", "user_id", "device_id", "secret").
		Where("id > ? AND secret <> '' AND SUBSTR(secret, 1, ?) <> ?", after, len(current), current).
		Order("id").Limit(batch).Find(&rows).Error
	if err != nil || len(rows) == 0 {
		return 0, 0, 0, err
	}
	err = Transaction(ctx, db, func(tx *gorm.DB) error {
		resealed, failed = 0, 0
		for _, d := range rows {
			aad := DeviceSecretAAD(d.AppID, d.UserID, d.DeviceID)
			plain, err := k.Open(d.Secret, aad)
			if err != nil {
				failed++
				continue
			}
			sealed, err := k.Seal(plain, aad)
			if err != nil {
				return err
			}
			// Compared with the value read, so a device registered again
			// since keeps its new secret; the device's updated_at is not
			// touched, nothing the app sent changed.
			res := tx.Model(&Device{}).Where("id = ? AND secret = ?", d.ID, d.Secret).UpdateColumn("secret", sealed)
			if res.Error != nil {
				return res.Error
			}
			resealed += int(res.RowsAffected)
		}
		return nil
	})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("reseal device secrets: %w", err)
	}
	return resealed, failed, rows[len(rows)-1].ID, nil
}
