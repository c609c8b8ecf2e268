package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/chime-dev/chime/netguard"
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
	// Guard decides which addresses endpoints may be dialed at: tenants
	// supply them, so by default (nil) only global unicast addresses.
	Guard *netguard.Policy
}

// Devices delivers notifications to web devices: one signed POST per
// notification to the device's endpoint URL (its token), signed with the
// device's own secret. It makes one attempt per notification and reports
// the outcome; the caller (package push) retries. 2xx is sent, 410 Gone
// means the endpoint is no more (invalid), 408, 429 and 5xx are transient
// (honouring Retry-After), other 4xx are permanent failures.
//
// Endpoints are the tenants', so the channel does not let them reach the
// operator's network: connections go through cfg.Guard, redirects are not
// followed (a 3xx is a failure), and the reason a tenant is shown for a
// connection that did not work is generic ("connection failed"); the error
// itself, which would tell an open port from a closed one, is logged.
type Devices struct {
	cfg    DevicesConfig
	client *http.Client
	slots  chan struct{}
	log    *slog.Logger
}

// Reasons shown to the tenant for an endpoint that could not be reached.
const (
	ReasonRefused    = "endpoint refused: address not allowed"
	ReasonConnection = "network: connection failed"
	ReasonRedirect   = "redirects are not followed"
)

// NewDevices returns the web device channel.
func NewDevices(cfg DevicesConfig, log *slog.Logger) *Devices {
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
	tr := cfg.Guard.Transport()
	tr.MaxIdleConns = cfg.MaxConns
	tr.MaxIdleConnsPerHost = cfg.MaxConns
	tr.MaxConnsPerHost = cfg.MaxConns
	client := &http.Client{Timeout: cfg.Timeout, Transport: tr,
		// A redirect would take the request to an address the tenant did
		// not register; the 3xx is the answer.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &Devices{cfg: cfg, client: client, slots: make(chan struct{}, cfg.Parallel), log: log}
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
	if err != nil || (req.URL.Scheme != "http" && req.URL.Scheme != "https") || req.URL.User != nil {
		// Registration refuses such URLs; one stored before it did is not
		// sent to.
		return sender.Outcome{Status: sender.Invalid, Reason: "bad endpoint URL"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "chime-webhook/1")
	signer.Sign(req.Header, n.ID, now, body)
	resp, err := d.client.Do(req)
	if errors.Is(err, netguard.ErrRefused) {
		d.log.Warn("web device endpoint refused", "notification", n.ID, "host", req.URL.Host, "err", err)
		return sender.Outcome{Status: sender.Failed, Reason: ReasonRefused}
	}
	if err != nil {
		d.log.Info("web device endpoint not reached", "notification", n.ID, "host", req.URL.Host, "err", err)
		return sender.Outcome{Status: sender.Retry, Reason: ReasonConnection}
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
	case c >= 300 && c < 400:
		return sender.Outcome{Status: sender.Failed, Reason: reason + ": " + ReasonRedirect}
	case c == http.StatusGone:
		return sender.Outcome{Status: sender.Invalid, Reason: reason}
	case c == http.StatusTooManyRequests, c == http.StatusRequestTimeout, c >= 500:
		return sender.Outcome{Status: sender.Retry, Reason: reason, RetryAfter: sender.RetryAfter(resp.Header.Get("Retry-After"))}
	default:
		return sender.Outcome{Status: sender.Failed, Reason: reason}
	}
}
