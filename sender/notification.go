package sender

import (
	"context"
	"sync"
	"time"
)

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

// DeliverEach sends each of ns with send, one goroutine per notification
// while it holds a place in slots: a channel that shares slots between calls
// never has more than cap(slots) sends in flight. It returns one outcome per
// notification, in order. If ctx ends while it waits for a place, the
// notifications not started yet are Retry with ctx's error as the reason.
func DeliverEach(ctx context.Context, ns []Notification, slots chan struct{}, send func(context.Context, *Notification) Outcome) []Outcome {
	out := make([]Outcome, len(ns))
	var wg sync.WaitGroup
	for i := range ns {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			for j := i; j < len(ns); j++ {
				out[j] = Outcome{Status: Retry, Reason: ctx.Err().Error()}
			}
			wg.Wait()
			return out
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			out[i] = send(ctx, &ns[i])
		}()
	}
	wg.Wait()
	return out
}
