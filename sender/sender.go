// Package sender defines how a worker hands a chunk of users to a delivery
// channel. Each channel is a sub-package: webhook (one signed-ready JSON POST
// per chunk) and logging (writes each chunk to a slog logger).
package sender

import (
	"context"
	"encoding/json"
	"time"
)

// Batch is one chunk of one group: the same message for every user in it.
type Batch struct {
	Occurrence int64
	Reminder   string // the reminder's key
	Title      string
	Body       string
	Location   string
	Zone       string
	FireAt     time.Time
	Group      int
	Users      []string
	// Data is the JSON object of the event behind the occurrence, for
	// templates; nil for timed reminders.
	Data json.RawMessage
	// Tags are the reminder's tags.
	Tags []string
	// Lang is the language of Title and Body; Translations hold them in
	// other languages, by BCP 47 tag (see package content).
	Lang         string
	Translations map[string]Text
	// IdempotencyKey is the same for every attempt at this chunk, so a
	// receiver can drop the copy a crash may cause.
	IdempotencyKey string

	// App is the app the reminder and its users belong to.
	App int64
	// DeliverWhenOnline asks channels that can tell to keep the message for
	// offline users until they connect rather than push it.
	DeliverWhenOnline bool
	// NotifyContacts asks that offline users' contacts get a copy.
	NotifyContacts bool
	// ExpiresAt ends the reminder's validity window: a channel that holds
	// messages (the inbox) does not deliver them after it.
	ExpiresAt time.Time
}

// Text is a reminder's title and body in one language.
type Text struct {
	Title string `json:"title"`
	Body  string `json:"body,omitempty"`
}

// Result counts what happened to a batch's users. Users not failed were sent.
type Result struct {
	Failed int // permanently refused; they are not retried

	// FailedUsers names the refused users, when the channel can tell.
	FailedUsers []string
	// Online and Offline count the users a channel that knows presence
	// found connected or not.
	Online, Offline int
}

// Sender delivers batches. An error means nothing in the batch can be known
// to have been delivered and the batch should be tried again later; users the
// channel refused for good are counted in Result.Failed instead.
type Sender interface {
	Send(ctx context.Context, b *Batch) (Result, error)
}
