// Package webhook delivers over HTTP POSTs signed per the Standard Webhooks
// specification (signature.go), in two ways:
//
//   - Sender POSTs each batch (a chunk of users) as one JSON document to one
//     configured URL, signed with the configured secret when there is one;
//   - Devices POSTs one notification per web device to the device's own
//     endpoint, signed with the device's own secret (used by package push).
//
// The rest of this comment is about Sender.
//
// Retries are go-retryablehttp's: connection errors, 429 and 5xx answers
// are retried with capped exponential backoff (honouring Retry-After); when
// they run out the batch is returned as a transient error and the worker
// retries the group later from its checkpoint. Any other 4xx answer is
// final: the batch's users are counted as failed. Every request carries an
// Idempotency-Key that is the same for every attempt at the same chunk.
//
// The attempts stay inside the batch's validity window: each one's deadline
// is the earlier of its Timeout and the window's end, and an attempt that
// would start after the window is not made. A batch whose window ends first
// has its users counted as expired.
package webhook

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/signature"
)

// DefaultTimeout bounds one webhook request.
const DefaultTimeout = 10 * time.Second

// Config configures the webhook channel.
type Config struct {
	// URL receives the POSTs. Required.
	URL string
	// Timeout bounds each attempt. Defaults to DefaultTimeout (10s).
	Timeout time.Duration
	// Retries is how many times a failed attempt is repeated. Defaults to 3.
	Retries int
	// RetryWaitMin and RetryWaitMax bound the backoff between attempts.
	// Default to 100ms and 2s.
	RetryWaitMin, RetryWaitMax time.Duration
	// MaxConns bounds the connections kept open to the receiver. Defaults to 64.
	MaxConns int
	// Secret ("whsec_...") signs every POST (webhook-id is the chunk's
	// idempotency key). The retries of one Send carry the first attempt's
	// signature: they follow within seconds, well inside a receiver's
	// timestamp tolerance (5 minutes in the specification's libraries).
	// Defaults to none: unsigned.
	Secret string
	// Now tells the time, for webhook-timestamp and the batches' validity
	// windows. Defaults to time.Now.
	Now func() time.Time
}

// Sender posts batches to a webhook receiver.
type Sender struct {
	cfg    Config
	client *retryablehttp.Client
	signer *signature.Signer
	log    *slog.Logger
}

// errWindowPassed ends the attempts at a batch whose validity window is over.
var errWindowPassed = errors.New("validity window passed")

// windowEnd keys the end of a request's validity window in its context, for
// the client's PrepareRetry, which sees only the request.
type windowEnd struct{}

var _ sender.Sender = (*Sender)(nil)

// New returns a webhook sender.
func New(cfg Config, log *slog.Logger) (*Sender, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("webhook: URL is required")
	}
	var signer *signature.Signer
	if cfg.Secret != "" {
		var err error
		if signer, err = signature.ParseSecret(cfg.Secret); err != nil {
			return nil, fmt.Errorf("webhook: %w", err)
		}
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	if cfg.Retries == 0 {
		cfg.Retries = 3
	}
	if cfg.RetryWaitMin == 0 {
		cfg.RetryWaitMin = 100 * time.Millisecond
	}
	if cfg.RetryWaitMax == 0 {
		cfg.RetryWaitMax = 2 * time.Second
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 64
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := retryablehttp.NewClient()
	c.HTTPClient = &http.Client{
		Timeout: cfg.Timeout,
		Transport: &http.Transport{
			MaxIdleConns:        cfg.MaxConns,
			MaxIdleConnsPerHost: cfg.MaxConns,
			MaxConnsPerHost:     cfg.MaxConns,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	c.RetryMax = cfg.Retries
	c.RetryWaitMin = cfg.RetryWaitMin
	c.RetryWaitMax = cfg.RetryWaitMax
	c.Logger = slogAdapter{log}
	// Hand the last response back instead of an error, so a final 5xx is
	// reported with its status.
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	// The context's deadline ends a backoff that reaches the window's end;
	// this catches a retry due at that very instant, on the sender's clock.
	c.PrepareRetry = func(req *http.Request) error {
		if end, ok := req.Context().Value(windowEnd{}).(time.Time); ok && !cfg.Now().Before(end) {
			return errWindowPassed
		}
		return nil
	}
	return &Sender{cfg: cfg, client: c, signer: signer, log: log}, nil
}

// Payload is the JSON document a receiver gets.
type Payload struct {
	Occurrence int64     `json:"occurrence"`
	Reminder   string    `json:"reminder"`
	Title      string    `json:"title"`
	Body       string    `json:"body"`
	Location   string    `json:"location"`
	Zone       string    `json:"zone"`
	FireAt     time.Time `json:"fire_at"`
	Group      int       `json:"group"`
	Users      []string  `json:"users"`
	// Data is the event's data, for occurrences of a topic.
	Data json.RawMessage `json:"data,omitempty"`
}

// Send posts b and reports its users sent, failed (a final 4xx), expired
// (the validity window ended before the receiver answered) or not known (an
// error).
func (s *Sender) Send(ctx context.Context, b *sender.Batch) (sender.Result, error) {
	if !b.ExpiresAt.IsZero() {
		left := b.ExpiresAt.Sub(s.cfg.Now())
		if left <= 0 {
			return s.expired(b, "before the first attempt"), nil
		}
		// On the sender's clock the window has left to run; the context's
		// deadline, on the real clock, is that far away.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, left, errWindowPassed)
		defer cancel()
		ctx = context.WithValue(ctx, windowEnd{}, b.ExpiresAt)
	}
	body, err := json.Marshal(Payload{
		Occurrence: b.Occurrence, Reminder: b.Reminder, Title: b.Title, Body: b.Body,
		Location: b.Location, Zone: b.Zone, FireAt: b.FireAt, Group: b.Group, Users: b.Users,
		Data: b.Data,
	})
	if err != nil {
		return sender.Result{}, fmt.Errorf("webhook: encode: %w", err)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return sender.Result{}, fmt.Errorf("webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "chime-webhook/1")
	req.Header.Set("Idempotency-Key", b.IdempotencyKey)
	if s.signer != nil {
		s.signer.Sign(req.Header, b.IdempotencyKey, s.cfg.Now(), body)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(err, errWindowPassed) || errors.Is(context.Cause(ctx), errWindowPassed) {
			return s.expired(b, "before the receiver answered"), nil
		}
		return sender.Result{}, fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return sender.Result{}, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return sender.Result{}, fmt.Errorf("webhook: receiver answered %s", resp.Status)
	default:
		return sender.Result{Failed: len(b.Users)}, nil
	}
}

// expired counts every user of b as expired; when says at what point of
// the send the validity window ended.
func (s *Sender) expired(b *sender.Batch, when string) sender.Result {
	s.log.Warn("webhook batch expired: validity window passed "+when, "occurrence", b.Occurrence, "group", b.Group,
		"users", len(b.Users), "expires_at", b.ExpiresAt)
	return sender.Result{Failed: len(b.Users), Expired: len(b.Users), FailedUsers: slices.Clone(b.Users)}
}

// slogAdapter lets retryablehttp log its retries through slog at debug level.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Error(msg string, kv ...any) { a.log.Warn(msg, kv...) }
func (a slogAdapter) Info(msg string, kv ...any)  { a.log.Debug(msg, kv...) }
func (a slogAdapter) Debug(msg string, kv ...any) { a.log.Debug(msg, kv...) }
func (a slogAdapter) Warn(msg string, kv ...any)  { a.log.Warn(msg, kv...) }
