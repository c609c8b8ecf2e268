package sender

import "time"

// Notification is one message to one device: what a push channel (APNs, FCM,
// a device's webhook) is handed.
type Notification struct {
	// ID is the same for every attempt at this message to this device; it
	// becomes the apns-id and the webhook-id so the receiving side can drop
	// a repeat.
	ID string
	// Token addresses the device: an APNs device token, an FCM registration
	// token, or a webhook endpoint URL.
	Token string
	// Secret signs webhooks ("whsec_..."); empty for other channels.
	Secret string
	Title  string
	Body   string
	// Data is handed to the app with the message.
	Data map[string]string
	// ExpiresAt tells the provider not to deliver after it; zero for never.
	ExpiresAt time.Time
	// CollapseID lets a newer message replace an undelivered older one.
	CollapseID string
}

// Status is what a provider did with one notification.
type Status int

const (
	// Sent: the provider accepted the notification.
	Sent Status = iota
	// Retry: a transient refusal (429, 5xx, a network error); the same
	// notification may be sent again after RetryAfter, or a backoff.
	Retry
	// Invalid: the token is unregistered or not valid; the device should
	// not be sent to again.
	Invalid
	// Failed: refused for good for another reason (payload, topic).
	Failed
)

// Outcome is a provider's answer to one notification.
type Outcome struct {
	Status Status
	// Reason is the provider's reason for anything but Sent, e.g.
	// "Unregistered", "BadDeviceToken", "UNREGISTERED", "http 503".
	Reason string
	// RetryAfter is the wait the provider asked for (Retry-After), if any.
	RetryAfter time.Duration
}
