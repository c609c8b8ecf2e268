package store

import (
	"strconv"
	"time"
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
	// Secret signs a web device's webhooks ("whsec_..."); empty otherwise.
	Secret         string     `gorm:"size:200;not null;default:''"`
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
