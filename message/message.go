// Package message is the message a reminder's occurrence sends to one group
// of users: a snapshot taken at the fire instant by the scheduler, carried in
// the group task (package queue) to the worker and, chunk by chunk, to the
// channel (package sender). Every hop embeds the one Message rather than
// copying it, so a field added here reaches the channel.
//
// Its JSON form is the group task's (short names, to keep tasks small):
// tasks queued by an earlier version must still decode, so a field's JSON
// name never changes.
package message

import (
	"encoding/json"
	"time"
)

// Message is what one occurrence says to one group of users.
type Message struct {
	Occurrence int64 `json:"o"`
	Group      int   `json:"g"`
	// ReminderID is the reminder's row ID. Channels that look up per-app
	// data (devices) use App, and find the app through ReminderID only
	// when App is 0 (a task queued before tasks named the app).
	ReminderID int64  `json:"r"`
	Reminder   string `json:"k"` // the reminder's key
	// App is the app the reminder and its users belong to; user IDs are
	// per app.
	App      int64     `json:"app,omitempty"`
	Title    string    `json:"t"`
	Body     string    `json:"b"`
	Location string    `json:"ln"` // the location's name
	Zone     string    `json:"z"`
	FireAt   time.Time `json:"f"`
	// ExpiresAt ends the validity window: a send that cannot happen before
	// it is recorded as expired, not made late. Zero means no limit.
	ExpiresAt time.Time `json:"e"`
	// Data is the JSON object of the event behind the occurrence (the
	// payload of POST /v1/events), for templates; empty for timed
	// reminders.
	Data json.RawMessage `json:"d,omitempty"`
	// Prayer is the prayer a prayer reminder's occurrence fires for; empty
	// for the other kinds.
	Prayer string `json:"pr,omitempty"`
	// Tags are the reminder's tags, which turn on content processing.
	Tags []string `json:"tg,omitempty"`
	// Lang is the language of Title and Body; Translations hold them in
	// other languages, by BCP 47 tag (see package content).
	Lang         string          `json:"la,omitempty"`
	Translations map[string]Text `json:"tr,omitempty"`
	// DeliverWhenOnline asks channels that can tell to keep the message for
	// offline users until they connect rather than push it.
	DeliverWhenOnline bool `json:"wo,omitempty"`
	// NotifyContacts asks that offline users' contacts get a copy.
	NotifyContacts bool `json:"nc,omitempty"`

	// Policy is what the delivery policy (package policy) needs to decide,
	// per chunk, who is sent: the reminder's category, critical flag and
	// quiet mode, and the app's defaults at the fire instant. Nil in tasks
	// queued before it (the users' own preferences still apply).
	Policy *Policy `json:"pol,omitempty"`
}

// Policy is the delivery policy of one occurrence.
type Policy struct {
	Category string `json:"c,omitempty"`
	Critical bool   `json:"x,omitempty"`
	// Drop records users in quiet hours as quiet instead of holding them.
	Drop bool `json:"d,omitempty"`
	// Quiet is the app's default quiet hours, for users without their own.
	Quiet *Quiet `json:"q,omitempty"`
	// CapMax users may get at most that many reminders of Category in a
	// rolling CapWindow; 0 is no cap.
	CapMax    int           `json:"cm,omitempty"`
	CapWindow time.Duration `json:"cw,omitempty"`
}

// Quiet is a span of local time of day, in minutes after midnight, that
// wraps past midnight when End is before Start ("22:00"-"07:00").
type Quiet struct {
	Start int `json:"s"`
	End   int `json:"e"`
}

// Text is a title and body in one language.
type Text struct {
	Title string `json:"title"`
	Body  string `json:"body,omitempty"`
}
