// Package sender defines how a worker hands a chunk of users to a delivery
// channel. Each channel is a sub-package: push (each user's registered
// devices through apns, fcm and signed webhooks), webhook (also one JSON POST
// per chunk) and logging (writes each chunk to a slog logger).
package sender

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/chime-dev/chime/message"
)

// Batch is one chunk of one group: the same message for every user in it.
type Batch struct {
	message.Message
	Users []string
	// IdempotencyKey is the same for every attempt at this chunk, so a
	// receiver can drop the copy a crash may cause.
	IdempotencyKey string
	// Exclude names, per user, the channels the user opted out of
	// (ChannelPush, ChannelInbox); those channels leave the user out. Nil
	// when nobody in the batch opted out of any.
	Exclude map[string][]string
}

// The channels a user can opt out of (package policy).
const (
	// ChannelPush is every device channel: APNs, FCM and web devices.
	ChannelPush = "push"
	// ChannelInbox is the in-app copy: the inbox and the live gateway
	// connection (package online).
	ChannelInbox = "inbox"
)

// Channels are the channels a user can opt out of, in order.
var Channels = []string{ChannelPush, ChannelInbox}

// Excluded reports whether user opted out of channel.
func (b *Batch) Excluded(user, channel string) bool {
	for _, c := range b.Exclude[user] {
		if c == channel {
			return true
		}
	}
	return false
}

// Result counts what happened to a batch's users. Users not failed were sent.
type Result struct {
	Failed int // permanently refused; they are not retried

	// FailedUsers names the refused users, when the channel can tell.
	FailedUsers []string
	// Online and Offline count the users a channel that knows presence
	// found connected or not.
	Online, Offline int

	// The fields below are filled by channels that know more (push); the
	// worker's acks count Failed only.

	// Expired and Skipped are the users among Failed that were not sent
	// because the validity window would have passed (Expired) or because
	// they have no enabled device (Skipped).
	Expired, Skipped int
	// Channels counts devices by channel ("apns", "fcm", "webhook").
	Channels map[string]Counts
	// Failures says why each failed device failed.
	Failures []Failure

	// ExpiredUsers names the users among FailedUsers that expired, when
	// the channel can tell (push); delivery events report them expired.
	ExpiredUsers []string
}

// Counts are what happened to the devices of one channel.
type Counts struct {
	Sent    int `json:"sent"`
	Failed  int `json:"failed"`
	Expired int `json:"expired"`
	Skipped int `json:"skipped"`
}

// Failure is one device that was not sent to, and why.
type Failure struct {
	User    string
	Device  string
	Channel string
	Reason  string
}

// Sender delivers batches. An error means nothing in the batch can be known
// to have been delivered and the batch should be tried again later; users the
// channel refused for good are counted in Result.Failed instead.
type Sender interface {
	Send(ctx context.Context, b *Batch) (Result, error)
}

// RetryAfter reads a Retry-After header value: delay seconds or an HTTP
// date. It is 0 when v is empty, malformed or in the past.
func RetryAfter(v string) time.Duration {
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
