package store

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// App is a tenant: every other row belongs to exactly one app.
type App struct {
	ID        int64  `gorm:"primaryKey"`
	Name      string `gorm:"size:100;not null"`
	CreatedAt time.Time
}

// APIKey authenticates requests for its app. Only the SHA-256 of the key is
// stored, with its first characters (Prefix) to tell keys apart. A revoked
// key keeps its row, for the record (see keys.go).
type APIKey struct {
	ID     int64  `gorm:"primaryKey"`
	AppID  int64  `gorm:"not null;index"`
	Hash   string `gorm:"size:64;not null;uniqueIndex"`
	Prefix string `gorm:"size:16;not null"`
	// Name is the operator's label for the key ("ci", "backend-2027").
	Name      string `gorm:"size:100;not null;default:''"`
	CreatedAt time.Time
	// LastUsedAt is when a request last used the key, to within
	// KeyTouchInterval.
	LastUsedAt *time.Time `gorm:"precision:3"`
	// ExpiresAt is when a key revoked with an overlap stops working.
	ExpiresAt *time.Time `gorm:"precision:3"`
	// RevokedAt is when the key was revoked at once.
	RevokedAt *time.Time `gorm:"precision:3"`
}

// Reminder kinds: what decides when a reminder fires.
const (
	// KindDaily fires at local times of day per location (ReminderTime).
	KindDaily = "daily"
	// KindTimetable fires at a local time per date per location (DatedTime),
	// such as prayer times that move every day.
	KindTimetable = "timetable"
	// KindOnce fires once, at At minus each of its Offsets, at every location
	// of the reminder: a live stream start, a flash sale.
	KindOnce = "once"
	// KindTopic fires when a business system posts an event on it (Event);
	// Schema declares the event's data.
	KindTopic = "topic"
	// KindPrayer fires at prayer times computed from each of its locations'
	// coordinates (package prayer), each Prayers entry at its offset; a
	// dated row of the app's timetable reminder named for the prayer
	// replaces the computed time at that location on that date.
	KindPrayer = "prayer"
)

// Column limits the API checks input against before writing, since
// MySQL/MariaDB would refuse a longer value (SQLite has no limits).
const (
	// MaxText is the most bytes a TEXT column holds: Reminder.Schema,
	// Reminder.Tags and Event.Data.
	MaxText = 65535
	// MaxLang is the most characters of a language tag: Reminder.Lang,
	// Device.Locale.
	MaxLang = 35
)

// Reminder is what a product manager defines: a message and when it fires.
type Reminder struct {
	ID    int64  `gorm:"primaryKey"`
	AppID int64  `gorm:"not null;uniqueIndex:ux_reminder_key,priority:1"`
	Key   string `gorm:"size:100;not null;uniqueIndex:ux_reminder_key,priority:2"`
	Title string `gorm:"size:200;not null"`
	Body  string `gorm:"size:2000;not null"`
	// Groups fixes the group count of every location of the reminder
	// (rounded up to a power of two); 0, the default, sizes each location's
	// groups from its audience (package grouping).
	Groups int `gorm:"not null"`
	// ValidForS is how long after a fire instant delivery is still useful.
	ValidForS int64 `gorm:"not null"`
	// StartsAt and EndsAt bound the instants the reminder fires at, if set.
	StartsAt *time.Time
	EndsAt   *time.Time
	// Paused reminders do not fire.
	Paused bool `gorm:"not null;default:false"`
	// Kind is one of the Kind constants.
	Kind string `gorm:"size:16;not null;default:daily"`
	// At is the instant of a KindOnce reminder.
	At *time.Time `gorm:"precision:3"`
	// Offsets are how long before At a KindOnce reminder fires, in seconds,
	// comma-separated ("600,60"); empty means at At itself.
	Offsets string `gorm:"size:500;not null;default:''"`
	// GraceS is how long after an instant a fire missed during an outage
	// still goes out (late); after it the occurrence is recorded as missed.
	// Zero means the validity window.
	GraceS int64 `gorm:"not null;default:0"`
	// Schema is the JSON Schema a KindTopic reminder's event data must meet.
	Schema    string `gorm:"type:text"`
	CreatedAt time.Time
	UpdatedAt time.Time

	// Lang is the language of Title and Body (BCP 47), Translations holds
	// them in other languages, and Tags turn on content processing (see
	// package content).
	Lang         string `gorm:"size:35;not null;default:'en'"`
	Translations Texts  `gorm:"type:mediumtext"`
	Tags         Tags   `gorm:"type:text"`

	// DeliverWhenOnline reminders wait in an offline user's inbox and go
	// out over the gateway when the user connects, instead of by push.
	DeliverWhenOnline bool `gorm:"not null;default:false"`
	// NotifyContacts reminders reach an offline user's contacts.
	NotifyContacts bool `gorm:"not null;default:false"`

	// Recurrence is the RFC 5545 RRULE naming the local dates a daily or
	// prayer reminder fires on (package recurrence); empty means every day.
	Recurrence string `gorm:"size:500;not null;default:''"`

	// Prayers are the prayers a KindPrayer reminder fires for, each with
	// its offset in seconds, comma-separated ("fajr:-600,maghrib:0").
	Prayers string `gorm:"size:500;not null;default:''"`
	// Method, Madhab and HighLatitudeRule are a KindPrayer reminder's
	// convention (package prayer's names; "" is its default); a location's
	// own override takes precedence.
	Method           string `gorm:"size:32;not null;default:''"`
	Madhab           string `gorm:"size:16;not null;default:''"`
	HighLatitudeRule string `gorm:"size:32;not null;default:''"`

	// Local makes a KindOnce reminder's At a wall-clock time (stored as
	// if it were UTC) that fires at that local time in each of its
	// locations' zones, users' own zones included (package userzone).
	Local bool `gorm:"not null;default:false"`
	// SpreadS spreads each occurrence's groups evenly over this many
	// seconds after the instant, each at a planned slot (package
	// scheduler); 0 sends them all at the instant. At most ValidForS.
	SpreadS int64 `gorm:"not null;default:0"`
	// Category names what kind of message the reminder is ("marketing"),
	// for users' category opt-outs and the app's frequency caps; "" is
	// none. Critical reminders ignore category opt-outs and quiet hours
	// (not opt-outs of the reminder itself). Quiet is what a user's quiet
	// hours do to the reminder: QuietModeHold ("", the default) or QuietModeDrop
	// (package policy).
	Category string `gorm:"size:32;not null;default:''"`
	Critical bool   `gorm:"not null;default:false"`
	Quiet    string `gorm:"size:8;not null;default:''"`
}

// Spread returns how long after an instant the reminder's groups are
// spread over; zero sends them all at the instant.
func (r Reminder) Spread() time.Duration { return time.Duration(r.SpreadS) * time.Second }

// MaxPrayerOffset bounds how far from its prayer's time a prayer
// reminder fires, either way.
const MaxPrayerOffset = 6 * time.Hour

// PrayerOffset is one prayer a KindPrayer reminder fires for: its name and
// how long after the prayer's time (negative: before) it fires.
type PrayerOffset struct {
	Prayer string
	Offset time.Duration
}

// FormatPrayers is the stored form of a prayer reminder's prayers.
func FormatPrayers(ps []PrayerOffset) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Prayer + ":" + strconv.FormatInt(int64(p.Offset/time.Second), 10)
	}
	return strings.Join(parts, ",")
}

// ParsePrayers reads a prayer reminder's stored prayers.
func ParsePrayers(s string) ([]PrayerOffset, error) {
	if s == "" {
		return nil, nil
	}
	var out []PrayerOffset
	for _, f := range strings.Split(s, ",") {
		name, off, ok := strings.Cut(f, ":")
		n, err := strconv.ParseInt(off, 10, 64)
		if !ok || err != nil || name == "" {
			return nil, fmt.Errorf("prayers %q: bad entry %q", s, f)
		}
		out = append(out, PrayerOffset{Prayer: name, Offset: time.Duration(n) * time.Second})
	}
	return out, nil
}

// ValidFor returns the reminder's validity window as a duration.
func (r Reminder) ValidFor() time.Duration { return time.Duration(r.ValidForS) * time.Second }

// Grace returns how long after an instant a late fire still goes out.
func (r Reminder) Grace() time.Duration {
	if r.GraceS <= 0 || r.GraceS > r.ValidForS {
		return r.ValidFor()
	}
	return time.Duration(r.GraceS) * time.Second
}

// ReminderLocation lists the locations a reminder's subscribers may be at.
// For daily reminders they are the locations of its times; timetable
// reminders gain the locations of their imported rows; once and topic
// reminders fire at every one of them.
type ReminderLocation struct {
	ReminderID int64 `gorm:"primaryKey;autoIncrement:false"`
	LocationID int64 `gorm:"primaryKey;autoIncrement:false"`
}

// DatedTime is a timetable entry: the local time a reminder fires at a
// location on one date.
type DatedTime struct {
	ReminderID int64 `gorm:"primaryKey;autoIncrement:false"`
	LocationID int64 `gorm:"primaryKey;autoIncrement:false"`
	// Date is the local calendar date, YYYY-MM-DD.
	Date string `gorm:"primaryKey;size:10;index:ix_dated_time_date"`
	// LocalSec is the time of day in seconds after local midnight.
	LocalSec  int `gorm:"not null"`
	CreatedAt time.Time
}

// Event is a business event posted on a topic reminder: every subscriber of
// the topic gets a message built from Data at FireAt.
type Event struct {
	ID         int64 `gorm:"primaryKey"`
	AppID      int64 `gorm:"not null;uniqueIndex:ux_event_idem,priority:1"`
	ReminderID int64 `gorm:"not null;index:ix_event_fire,priority:1"`
	// IdempotencyKey deduplicates retried posts; nil when none was sent.
	IdempotencyKey *string `gorm:"size:200;uniqueIndex:ux_event_idem,priority:2"`
	// RequestHash is the SHA-256 of the request, to refuse a key reused for
	// another request.
	RequestHash string    `gorm:"size:64;not null"`
	Data        string    `gorm:"type:text;not null"`
	FireAt      time.Time `gorm:"not null;precision:3;index:ix_event_fire,priority:2"`
	Canceled    bool      `gorm:"not null;default:false"`
	CreatedAt   time.Time
}

// PlannerMark records how far ahead the planner has planned; after an
// outage, the instants between it and now are caught up or recorded as
// missed.
type PlannerMark struct {
	ID           int64     `gorm:"primaryKey;autoIncrement:false"`
	PlannedUntil time.Time `gorm:"not null;precision:3"`
}

// Location is a place with one IANA time zone, shared by an app's reminders.
type Location struct {
	ID        int64  `gorm:"primaryKey"`
	AppID     int64  `gorm:"not null;uniqueIndex:ux_location_name,priority:1"`
	Name      string `gorm:"size:100;not null;uniqueIndex:ux_location_name,priority:2"`
	Zone      string `gorm:"size:64;not null"`
	CreatedAt time.Time
	// Coordinates, for the prayer times computed there; nil until given.
	Latitude  *float64
	Longitude *float64
	Elevation *float64
	// A regional prayer convention that overrides a request's or a
	// reminder's; "" is none.
	Method           string `gorm:"size:32;not null;default:''"`
	Madhab           string `gorm:"size:16;not null;default:''"`
	HighLatitudeRule string `gorm:"size:32;not null;default:''"`
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

// ZoneTime is a local time of day at which a daily reminder fires in each
// user's own zone: at every managed zone location (package userzone) the
// reminder has subscribers at.
type ZoneTime struct {
	ReminderID int64 `gorm:"primaryKey;autoIncrement:false"`
	// LocalSec is the time of day in seconds after local midnight.
	LocalSec  int `gorm:"primaryKey;autoIncrement:false"`
	CreatedAt time.Time
}

// Subscription registers one user of an app for a reminder at a location.
// GroupNo is the user's bucket, grouping.Bucket(UserID); the user's group
// at a location of N groups is GroupNo mod N.
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
	OccMissed    = "missed"    // its grace window passed before a coordinator could fire it
	OccCanceled  = "canceled"  // its reminder time was removed before it fired
)

// Occurrence is one firing of a reminder at a location.
type Occurrence struct {
	ID         int64     `gorm:"primaryKey"`
	ReminderID int64     `gorm:"not null;uniqueIndex:ux_occurrence,priority:1"`
	LocationID int64     `gorm:"not null;uniqueIndex:ux_occurrence,priority:2"`
	FireAt     time.Time `gorm:"not null;precision:3;uniqueIndex:ux_occurrence,priority:3;index:ix_occurrence_due,priority:2"`
	// EventID is the event a topic occurrence fires for; 0 otherwise.
	EventID int64 `gorm:"not null;default:0;uniqueIndex:ux_occurrence,priority:4"`
	// Prayer is the prayer a prayer reminder's occurrence fires for
	// (package prayer's name, e.g. "fajr"), for its templates' .Prayer;
	// empty for the other kinds.
	Prayer string `gorm:"size:32;not null;default:''"`
	// TestUser is the one user a test send, or a zone move's catch-up
	// (AddCatchUp), delivers to; empty for the reminder's own occurrences,
	// which are its fire history.
	TestUser  string    `gorm:"size:191;not null;default:'';uniqueIndex:ux_occurrence,priority:5"`
	ExpiresAt time.Time `gorm:"not null;precision:3"`
	// MissAt ends the grace window: not fired by then, the occurrence is
	// recorded as missed. Nil means ExpiresAt.
	MissAt      *time.Time `gorm:"precision:3"`
	State       string     `gorm:"size:16;not null;index:ix_occurrence_due,priority:1"`
	GroupsTotal int        `gorm:"not null"`
	GroupsDone  int        `gorm:"not null"`
	Delivered   int64      `gorm:"not null"`
	Failed      int64      `gorm:"not null"`
	Expired     int64      `gorm:"not null"`
	FiredAt     *time.Time `gorm:"precision:3"`
	DoneAt      *time.Time `gorm:"precision:3"`
	CreatedAt   time.Time

	// Opens counts the users who opened the occurrence's message (package
	// deliveryevent), each once.
	Opens int64 `gorm:"not null;default:0"`
	// SpreadS is the reminder's spread when the occurrence fired: its
	// groups were planned at slots over that many seconds after FireAt.
	SpreadS int64 `gorm:"not null;default:0"`
	// SlotsLateMs is the most a group of a spread occurrence went on the
	// queue after its planned slot.
	SlotsLateMs int64 `gorm:"not null;default:0"`
	// Users not sent by the delivery policy (package policy): opted out
	// (of the reminder, its category or every channel), in quiet hours
	// with nothing to hold them for, or over a frequency cap.
	SkippedPreference int64 `gorm:"not null;default:0"`
	Quiet             int64 `gorm:"not null;default:0"`
	Capped            int64 `gorm:"not null;default:0"`
}

// Group run states.
const (
	// RunPending is a run prepared ahead of the fire instant. Once its
	// occurrence is firing, its task is on the queue, unless it is a
	// spread send's waiting for its slot, which moves it to queued.
	RunPending = "pending"
	// RunQueued is a run whose task went on the queue after its
	// occurrence's instant: at its spread slot, again (the reaper, a
	// released group), or a release of held users.
	RunQueued   = "queued"
	RunStarted  = "started"  // a worker sent its start ack
	RunFinished = "finished" // a worker sent its finish ack
	RunExpired  = "expired"  // its validity window passed before it finished
)

// GroupRun is the delivery of one group of one occurrence.
type GroupRun struct {
	ID           int64 `gorm:"primaryKey"`
	OccurrenceID int64 `gorm:"not null;uniqueIndex:ux_group_run,priority:1"`
	GroupNo      int   `gorm:"not null;uniqueIndex:ux_group_run,priority:2"`
	// Layout is the group count of the location when the run was
	// prepared; its tasks read group GroupNo of that layout.
	Layout     int        `gorm:"not null;default:0"`
	State      string     `gorm:"size:16;not null;index:ix_group_run_state,priority:1;index:ix_group_run_slot,priority:1"`
	Attempts   int        `gorm:"not null"`
	Worker     string     `gorm:"size:100;not null"`
	Sent       int        `gorm:"not null"`
	Failed     int        `gorm:"not null"`
	Expired    int        `gorm:"not null"`
	QueuedAt   time.Time  `gorm:"not null;precision:3;index:ix_group_run_state,priority:2"`
	StartedAt  *time.Time `gorm:"precision:3"`
	FinishedAt *time.Time `gorm:"precision:3"`
	// SlotAt is the group's planned slot in a spread send: its task goes
	// on the queue then, not at the instant. Nil when not spread.
	SlotAt *time.Time `gorm:"precision:3;index:ix_group_run_slot,priority:2"`

	// The group's users not sent by the delivery policy, as on Occurrence.
	SkippedPreference int `gorm:"not null;default:0"`
	Quiet             int `gorm:"not null;default:0"`
	Capped            int `gorm:"not null;default:0"`

	// CountedThrough is the last user of the run's latest chunk whose
	// status counts are in message_stats (package status, CountChunk), ""
	// before the first: a chunk sent again counts nothing more.
	CountedThrough string `gorm:"size:191;not null;default:''"`
}

// ParseOffsets reads a once reminder's stored offsets ("600,60", seconds
// before its instant); empty means the instant itself.
func ParseOffsets(s string) ([]time.Duration, error) {
	if s == "" {
		return []time.Duration{0}, nil
	}
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("offsets %q: %w", s, err)
		}
		out = append(out, time.Duration(n)*time.Second)
	}
	return out, nil
}
