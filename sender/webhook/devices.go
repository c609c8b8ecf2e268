package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/chime-dev/chime/sender"
)

// DevicesConfig configures delivery to web devices.
type DevicesConfig struct {
	// Timeout bounds one request. Defaults to 10s.
	Timeout time.Duration
	// MaxConns bounds the connections kept per endpoint host. Defaults to 64.
	MaxConns int
	// Parallel bounds the requests in flight. Defaults to 256.
	Parallel int
	// Now tells the time for webhook-timestamp. Defaults to time.Now.
	Now func() time.Time
}

// Devices delivers notifications to web devices: one signed POST per
// notification to the device's endpoint URL (its token), signed with the
// device's own secret. It makes one attempt per notification and reports
// the outcome; the caller (package push) retries. 2xx is sent, 410 Gone
// means the endpoint is no more (invalid), 408, 429 and 5xx are transient
// (honouring Retry-After), other 4xx are permanent failures.
type Devices struct {
	cfg    DevicesConfig
	client *http.Client
	slots  chan struct{}
}

// NewDevices returns the web device channel.
func NewDevices(cfg DevicesConfig) *Devices {
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 64
	}
	if cfg.Parallel == 0 {
		cfg.Parallel = 256
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = cfg.MaxConns
	tr.MaxIdleConnsPerHost = cfg.MaxConns
	tr.MaxConnsPerHost = cfg.MaxConns
	return &Devices{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout, Transport: tr}, slots: make(chan struct{}, cfg.Parallel)}
}

// Event is the JSON body of a device webhook, in the Standard Webhooks
// shape: a type, a timestamp and the data.
type Event struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      EventData `json:"data"`
}

// EventData is the notification itself.
type EventData struct {
	ID    string            `json:"id"`
	Title string            `json:"title"`
	Body  string            `json:"body"`
	Data  map[string]string `json:"data,omitempty"`
}

// EventType is the type of every device webhook.
const EventType = "reminder.notification"

// Deliver posts each notification and returns one outcome per notification,
// in order.
func (d *Devices) Deliver(ctx context.Context, ns []sender.Notification) []sender.Outcome {
	return sender.DeliverEach(ctx, ns, d.slots, d.post)
}

func (d *Devices) post(ctx context.Context, n *sender.Notification) sender.Outcome {
	signer, err := ParseSecret(n.Secret)
	if err != nil {
		return sender.Outcome{Status: sender.Failed, Reason: err.Error()}
	}
	now := d.cfg.Now()
	body, err := json.Marshal(Event{Type: EventType, Timestamp: now.UTC(),
		Data: EventData{ID: n.ID, Title: n.Title, Body: n.Body, Data: n.Data}})
	if err != nil {
		return sender.Outcome{Status: sender.Failed, Reason: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.Token, bytes.NewReader(body))
	if err != nil {
		return sender.Outcome{Status: sender.Invalid, Reason: "bad endpoint URL"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "chime-webhook/1")
	signer.Sign(req.Header, n.ID, now, body)
	resp, err := d.client.Do(req)
	if err != nil {
		return sender.Outcome{Status: sender.Retry, Reason: "network: " + err.Error()}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return Classify(resp)
}

// Classify maps a receiver's answer onto an outcome.
func Classify(resp *http.Response) sender.Outcome {
	reason := "http " + strconv.Itoa(resp.StatusCode)
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return sender.Outcome{Status: sender.Sent}
	case c == http.StatusGone:
		return sender.Outcome{Status: sender.Invalid, Reason: reason}
	case c == http.StatusTooManyRequests, c == http.StatusRequestTimeout, c >= 500:
		return sender.Outcome{Status: sender.Retry, Reason: reason, RetryAfter: sender.RetryAfter(resp.Header.Get("Retry-After"))}
	default:
		return sender.Outcome{Status: sender.Failed, Reason: reason}
	}
}
