// Package apns delivers notifications to Apple devices through the Apple
// Push Notification service, with github.com/sideshow/apns2.
//
// Authentication is token based: a .p8 signing key with its key ID and team
// ID produce the ES256 provider token (JWT) that every request carries; one
// token is shared by all connections, because APNs refuses tokens renewed
// more often than every 20 minutes. Requests go over HTTP/2. One HTTP/2
// connection multiplexes many streams, but APNs bounds the streams per
// connection, so the channel keeps Conns clients, each with its own
// connection, and spreads notifications over them.
//
// Answers are mapped onto sender outcomes: 200 is sent; 410 Unregistered,
// 400 BadDeviceToken and DeviceTokenNotForTopic make the device invalid;
// 429, 5xx, 403 (a provider-token problem APNs asks to fix and retry) and
// network errors are transient; any other 4xx is a permanent failure. The
// caller (package push) retries and records.
package apns

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/payload"
	"github.com/sideshow/apns2/token"
	"golang.org/x/net/http2"

	"github.com/chime-dev/chime/sender"
)

// Defaults of the Config.
const (
	DefaultHost  = apns2.HostProduction
	DefaultConns = 4
)

// Config configures the APNs channel.
type Config struct {
	// Key is the .p8 signing key (PEM, PKCS #8). Required.
	Key []byte
	// KeyID and TeamID name the key and its Apple developer team. Required.
	KeyID, TeamID string
	// Topic is the app's bundle ID, sent as apns-topic. Required.
	Topic string
	// Host is the APNs server. Defaults to DefaultHost (apns2.HostProduction)
	// (https://api.push.apple.com); tests point it at a local server.
	Host string
	// RootCAs verifies the server's certificate. Defaults to the system
	// roots; tests set the local server's certificate.
	RootCAs *x509.CertPool
	// Conns is how many HTTP/2 connections are kept. Defaults to
	// DefaultConns (4).
	Conns int
	// Parallel bounds the requests in flight over all connections. Defaults
	// to 512.
	Parallel int
	// Timeout bounds one request. Defaults to 10s.
	Timeout time.Duration
}

// Channel sends notifications to APNs.
type Channel struct {
	cfg     Config
	clients []*apns2.Client
	next    atomic.Uint64
	slots   chan struct{}
}

// New returns an APNs channel. It connects on the first send.
func New(cfg Config) (*Channel, error) {
	if len(cfg.Key) == 0 || cfg.KeyID == "" || cfg.TeamID == "" || cfg.Topic == "" {
		return nil, errors.New("apns: key, key ID, team ID and topic are required")
	}
	cfg.Host = cmp.Or(cfg.Host, DefaultHost)
	cfg.Conns = cmp.Or(cfg.Conns, DefaultConns)
	if cfg.Parallel == 0 {
		cfg.Parallel = 512
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	key, err := token.AuthKeyFromBytes(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("apns: signing key: %w", err)
	}
	tok := &token.Token{AuthKey: key, KeyID: cfg.KeyID, TeamID: cfg.TeamID}
	c := &Channel{cfg: cfg, slots: make(chan struct{}, cfg.Parallel)}
	for range cfg.Conns {
		cl := apns2.NewTokenClient(tok)
		cl.Host = cfg.Host
		// Each client has a transport of its own, hence a connection of its own.
		cl.HTTPClient = &http.Client{
			Timeout: cfg.Timeout,
			// x/net's HTTP/2 transport: its ReadIdleTimeout pings an idle
			// connection as apns2 expects; moving to net/http's HTTP2 config
			// is a change of its own.
			Transport: &http2.Transport{
				TLSClientConfig: &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
				ReadIdleTimeout: apns2.ReadIdleTimeout,
			},
		}
		c.clients = append(c.clients, cl)
	}
	return c, nil
}

// Deliver sends each notification and returns one outcome per notification,
// in order.
func (c *Channel) Deliver(ctx context.Context, ns []sender.Notification) []sender.Outcome {
	return sender.DeliverEach(ctx, ns, c.slots, c.push)
}

// push sends one notification through the next client in turn.
func (c *Channel) push(ctx context.Context, n *sender.Notification) sender.Outcome {
	cl := c.clients[c.next.Add(1)%uint64(len(c.clients))]
	resp, err := cl.PushWithContext(ctx, c.notification(n))
	return Classify(resp, err)
}

func (c *Channel) notification(n *sender.Notification) *apns2.Notification {
	p := payload.NewPayload().AlertTitle(n.Title).AlertBody(n.Body).Sound("default")
	for k, v := range n.Data {
		p.Custom(k, v)
	}
	return &apns2.Notification{
		ApnsID:      n.ID,
		CollapseID:  n.CollapseID,
		DeviceToken: n.Token,
		Topic:       c.cfg.Topic,
		Expiration:  n.ExpiresAt,
		Priority:    apns2.PriorityHigh,
		PushType:    apns2.PushTypeAlert,
		Payload:     p,
	}
}

// Classify maps an APNs answer (or a transport error) onto an outcome.
func Classify(resp *apns2.Response, err error) sender.Outcome {
	if err != nil {
		return sender.Outcome{Status: sender.Retry, Reason: "network: " + err.Error()}
	}
	reason := resp.Reason
	if reason == "" {
		reason = "http " + strconv.Itoa(resp.StatusCode)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return sender.Outcome{Status: sender.Sent}
	case resp.StatusCode == http.StatusGone,
		resp.Reason == apns2.ReasonBadDeviceToken, resp.Reason == apns2.ReasonDeviceTokenNotForTopic:
		return sender.Outcome{Status: sender.Invalid, Reason: reason}
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500, resp.StatusCode == http.StatusForbidden:
		return sender.Outcome{Status: sender.Retry, Reason: reason}
	default:
		return sender.Outcome{Status: sender.Failed, Reason: reason}
	}
}
