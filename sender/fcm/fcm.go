// Package fcm delivers notifications to Android devices through Firebase
// Cloud Messaging, with the Firebase Admin Go SDK's messaging client
// (firebase.google.com/go/v4/messaging): SendEach in batches of at most 500.
//
// The SDK is used rather than a hand-made client of the HTTP v1 API because
// it can be pointed at another server: option.WithEndpoint replaces
// https://fcm.googleapis.com/v1, and SendEach then POSTs each message to
// <endpoint>/projects/<project>/messages:send, the HTTP v1 API. Tests and
// benchmarks use that to run against a local server (package fcmtest).
// Authentication is a service account: golang.org/x/oauth2/google turns its
// JSON key into a token source (a signed JWT exchanged at the key's
// token_uri for an access token), and option.WithHTTPClient hands the SDK a
// client that carries the bearer token and keeps enough idle connections for
// SendEach's 50 parallel requests per batch.
//
// Answers are mapped onto sender outcomes: UNREGISTERED, INVALID_ARGUMENT
// and SENDER_ID_MISMATCH make the device invalid; QUOTA_EXCEEDED (429, with
// its Retry-After), UNAVAILABLE and INTERNAL are transient; anything else is a
// permanent failure. The SDK itself already retries 503 answers and network
// errors a few times (its default retry policy) before reporting them.
package fcm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"

	"github.com/chime-dev/chime/sender"
)

// Scope is the OAuth 2.0 scope FCM's HTTP v1 API needs.
const Scope = "https://www.googleapis.com/auth/firebase.messaging"

// MaxBatch is the most messages one SendEach call takes.
const MaxBatch = 500

// DefaultRate is FCM's default quota of messages per minute per project,
// the rate a deployment limits itself to unless told otherwise.
const DefaultRate = 600_000

// Config configures the FCM channel.
type Config struct {
	// ProjectID is the Firebase project. Required.
	ProjectID string
	// Credentials is the service account's JSON key. Required.
	Credentials []byte
	// Endpoint replaces the FCM v1 base URL. Defaults to the SDK's
	// https://fcm.googleapis.com/v1.
	Endpoint string
	// Conns bounds the connections kept to FCM. Defaults to 128.
	Conns int
	// Timeout bounds one request. Defaults to 10s.
	Timeout time.Duration
}

// Channel sends notifications to FCM.
type Channel struct {
	client *messaging.Client
}

// New returns an FCM channel.
func New(ctx context.Context, cfg Config) (*Channel, error) {
	if cfg.ProjectID == "" || len(cfg.Credentials) == 0 {
		return nil, errors.New("fcm: project ID and service account credentials are required")
	}
	if cfg.Conns == 0 {
		cfg.Conns = 128
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	creds, err := google.CredentialsFromJSONWithType(ctx, cfg.Credentials, google.ServiceAccount, Scope)
	if err != nil {
		return nil, fmt.Errorf("fcm: credentials: %w", err)
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConns = cfg.Conns
	base.MaxIdleConnsPerHost = cfg.Conns
	base.MaxConnsPerHost = cfg.Conns
	hc := &http.Client{Timeout: cfg.Timeout, Transport: &oauth2.Transport{Source: creds.TokenSource, Base: base}}
	opts := []option.ClientOption{option.WithHTTPClient(hc)}
	if cfg.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(cfg.Endpoint))
	}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: cfg.ProjectID}, opts...)
	if err != nil {
		return nil, fmt.Errorf("fcm: %w", err)
	}
	client, err := app.Messaging(ctx)
	if err != nil {
		return nil, fmt.Errorf("fcm: %w", err)
	}
	return &Channel{client: client}, nil
}

// Deliver sends the notifications with SendEach, MaxBatch at a time, and
// returns one outcome per notification, in order.
func (c *Channel) Deliver(ctx context.Context, ns []sender.Notification) []sender.Outcome {
	out := make([]sender.Outcome, 0, len(ns))
	for start := 0; start < len(ns); start += MaxBatch {
		part := ns[start:min(start+MaxBatch, len(ns))]
		msgs := make([]*messaging.Message, len(part))
		for i := range part {
			msgs[i] = message(&part[i])
		}
		br, err := c.client.SendEach(ctx, msgs)
		if err != nil {
			// The batch as a whole was refused before any send (validation).
			for range part {
				out = append(out, sender.Outcome{Status: sender.Failed, Reason: err.Error()})
			}
			continue
		}
		for _, r := range br.Responses {
			if r.Success {
				out = append(out, sender.Outcome{Status: sender.Sent})
				continue
			}
			out = append(out, Classify(r.Error))
		}
	}
	return out
}

func message(n *sender.Notification) *messaging.Message {
	m := &messaging.Message{
		Token:        n.Token,
		Notification: &messaging.Notification{Title: n.Title, Body: n.Body},
		Data:         n.Data,
		Android:      &messaging.AndroidConfig{Priority: "high", CollapseKey: n.CollapseID},
	}
	if !n.ExpiresAt.IsZero() {
		ttl := max(time.Until(n.ExpiresAt).Truncate(time.Second), 0)
		m.Android.TTL = &ttl
	}
	return m
}

// Classify maps a SendEach per-message error onto an outcome.
func Classify(err error) sender.Outcome {
	switch {
	case messaging.IsUnregistered(err):
		return sender.Outcome{Status: sender.Invalid, Reason: "UNREGISTERED"}
	case messaging.IsInvalidArgument(err):
		return sender.Outcome{Status: sender.Invalid, Reason: "INVALID_ARGUMENT"}
	case messaging.IsSenderIDMismatch(err):
		return sender.Outcome{Status: sender.Invalid, Reason: "SENDER_ID_MISMATCH"}
	case messaging.IsQuotaExceeded(err), errorutils.IsResourceExhausted(err):
		return sender.Outcome{Status: sender.Retry, Reason: "QUOTA_EXCEEDED", RetryAfter: retryAfter(err)}
	case messaging.IsUnavailable(err), errorutils.IsUnavailable(err):
		return sender.Outcome{Status: sender.Retry, Reason: "UNAVAILABLE", RetryAfter: retryAfter(err)}
	case messaging.IsInternal(err), errorutils.IsInternal(err):
		return sender.Outcome{Status: sender.Retry, Reason: "INTERNAL", RetryAfter: retryAfter(err)}
	case errorutils.HTTPResponse(err) == nil:
		// No answer at all: a network error or a timeout.
		return sender.Outcome{Status: sender.Retry, Reason: "network: " + err.Error()}
	default:
		return sender.Outcome{Status: sender.Failed, Reason: err.Error()}
	}
}

func retryAfter(err error) time.Duration {
	resp := errorutils.HTTPResponse(err)
	if resp == nil {
		return 0
	}
	return sender.RetryAfter(resp.Header.Get("Retry-After"))
}
