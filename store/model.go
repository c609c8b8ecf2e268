package store

import "time"

// App is a tenant: every other row belongs to exactly one app.
type App struct {
	ID        int64  `gorm:"primaryKey"`
	Name      string `gorm:"size:100;not null"`
	CreatedAt time.Time
}

// APIKey authenticates requests for its app. Only the SHA-256 of the key is
// stored.
type APIKey struct {
	ID        int64  `gorm:"primaryKey"`
	AppID     int64  `gorm:"not null;index"`
	Hash      string `gorm:"size:64;not null;uniqueIndex"`
	Prefix    string `gorm:"size:16;not null"`
	CreatedAt time.Time
}

// Reminder is what a product manager defines: a message and when it fires.
type Reminder struct {
	ID     int64  `gorm:"primaryKey"`
	AppID  int64  `gorm:"not null;uniqueIndex:ux_reminder_key,priority:1"`
	Key    string `gorm:"size:100;not null;uniqueIndex:ux_reminder_key,priority:2"`
	Title  string `gorm:"size:200;not null"`
	Body   string `gorm:"size:2000;not null"`
	Groups int    `gorm:"not null"`
	// ValidForS is how long after a fire instant delivery is still useful.
	ValidForS int64 `gorm:"not null"`
	// StartsAt and EndsAt bound the instants the reminder fires at, if set.
	StartsAt *time.Time
	EndsAt   *time.Time
	// Paused reminders do not fire.
	Paused    bool `gorm:"not null;default:false"`
	CreatedAt time.Time
	UpdatedAt time.Time

	// DeliverWhenOnline reminders wait in an offline user's inbox and go
	// out over the gateway when the user connects, instead of by push.
	DeliverWhenOnline bool `gorm:"not null;default:false"`
	// NotifyContacts reminders reach an offline user's contacts.
	NotifyContacts bool `gorm:"not null;default:false"`
}

// ValidFor returns the reminder's validity window as a duration.
func (r Reminder) ValidFor() time.Duration { return time.Duration(r.ValidForS) * time.Second }

// Location is a place with one IANA time zone, shared by an app's reminders.
type Location struct {
	ID        int64  `gorm:"primaryKey"`
	AppID     int64  `gorm:"not null;uniqueIndex:ux_location_name,priority:1"`
	Name      string `gorm:"size:100;not null;uniqueIndex:ux_location_name,priority:2"`
	Zone      string `gorm:"size:64;not null"`
	CreatedAt time.Time
}

// ReminderTime is a local time of day at which a reminder fires at a location.
type ReminderTime struct {
	ID         int64 `gorm:"primaryKey"`
	ReminderID int64 `gorm:"not null;uniqueIndex:ux_reminder_time,priority:1"`
	LocationID int64 `gorm:"not null;uniqueIndex:ux_reminder_time,priority:2"`
	// LocalSec is the time of day in seconds after local midnight.
	LocalSec  int `gorm:"not null;uniqueIndex:ux_reminder_time,priority:3"`
	CreatedAt time.Time
}

// Subscription registers one user of an app for a reminder at a location.
// GroupNo is grouping.Of(UserID, reminder.Groups).
type Subscription struct {
	ReminderID int64  `gorm:"primaryKey;autoIncrement:false;index:ix_subscription_group,priority:1"`
	UserID     string `gorm:"primaryKey;size:191"`
	LocationID int64  `gorm:"not null;index:ix_subscription_group,priority:2"`
	GroupNo    int    `gorm:"not null;index:ix_subscription_group,priority:3"`
	CreatedAt  time.Time
}

// Occurrence states.
const (
	OccScheduled = "scheduled" // planned, not fired yet
	OccFiring    = "firing"    // groups are on the queue
	OccDone      = "done"      // every group finished
	OccExpired   = "expired"   // its validity window passed before it could fire
	OccCanceled  = "canceled"  // its reminder time was removed before it fired
)

// Occurrence is one firing of a reminder at a location.
type Occurrence struct {
	ID          int64      `gorm:"primaryKey"`
	ReminderID  int64      `gorm:"not null;uniqueIndex:ux_occurrence,priority:1"`
	LocationID  int64      `gorm:"not null;uniqueIndex:ux_occurrence,priority:2"`
	FireAt      time.Time  `gorm:"not null;precision:3;uniqueIndex:ux_occurrence,priority:3;index:ix_occurrence_due,priority:2"`
	ExpiresAt   time.Time  `gorm:"not null;precision:3"`
	State       string     `gorm:"size:16;not null;index:ix_occurrence_due,priority:1"`
	GroupsTotal int        `gorm:"not null"`
	GroupsDone  int        `gorm:"not null"`
	Delivered   int64      `gorm:"not null"`
	Failed      int64      `gorm:"not null"`
	Expired     int64      `gorm:"not null"`
	FiredAt     *time.Time `gorm:"precision:3"`
	DoneAt      *time.Time `gorm:"precision:3"`
	CreatedAt   time.Time
}

// Group run states.
const (
	RunPending  = "pending"  // prepared ahead of the fire instant
	RunQueued   = "queued"   // a task for it is on the queue
	RunStarted  = "started"  // a worker sent its start ack
	RunFinished = "finished" // a worker sent its finish ack
	RunExpired  = "expired"  // its validity window passed before it finished
)

// GroupRun is the delivery of one group of one occurrence.
type GroupRun struct {
	ID           int64      `gorm:"primaryKey"`
	OccurrenceID int64      `gorm:"not null;uniqueIndex:ux_group_run,priority:1"`
	GroupNo      int        `gorm:"not null;uniqueIndex:ux_group_run,priority:2"`
	State        string     `gorm:"size:16;not null;index:ix_group_run_state,priority:1"`
	Attempts     int        `gorm:"not null"`
	Worker       string     `gorm:"size:100;not null"`
	Sent         int        `gorm:"not null"`
	Failed       int        `gorm:"not null"`
	Expired      int        `gorm:"not null"`
	QueuedAt     time.Time  `gorm:"not null;precision:3;index:ix_group_run_state,priority:2"`
	StartedAt    *time.Time `gorm:"precision:3"`
	FinishedAt   *time.Time `gorm:"precision:3"`
}
