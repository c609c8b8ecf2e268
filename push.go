package chime

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/content"
	"github.com/chime-dev/chime/netguard"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/sender/apns"
	"github.com/chime-dev/chime/sender/fcm"
	"github.com/chime-dev/chime/sender/push"
	"github.com/chime-dev/chime/sender/webhook"
)

// The channels the push sender dispatches to.
var (
	_ push.Channel = (*apns.Channel)(nil)
	_ push.Channel = (*fcm.Channel)(nil)
	_ push.Channel = (*webhook.Devices)(nil)
)

// PushConfig configures CHIME_SENDER=push: APNs when APNSKeyFile is set,
// FCM when FCMProject is set, and web devices always. Devices of a platform
// whose channel is not configured are recorded as failed.
type PushConfig struct {
	// APNSKeyFile is the .p8 signing key of token-based APNs auth.
	APNSKeyFile string `env:"CHIME_APNS_KEY_FILE"`
	// APNSKeyID is the key's 10-character ID.
	APNSKeyID string `env:"CHIME_APNS_KEY_ID"`
	// APNSTeamID is the Apple developer team's ID.
	APNSTeamID string `env:"CHIME_APNS_TEAM_ID"`
	// APNSTopic is the app's bundle ID (apns-topic).
	APNSTopic string `env:"CHIME_APNS_TOPIC"`
	// APNSHost is the APNs server; https://api.sandbox.push.apple.com for
	// development builds.
	APNSHost string `env:"CHIME_APNS_HOST" envDefault:"https://api.push.apple.com"`
	// APNSCAFile, if set, is a PEM file of the only roots trusted for
	// APNSHost (a local server); otherwise the system roots.
	APNSCAFile string `env:"CHIME_APNS_CA_FILE"`
	// APNSConns is how many HTTP/2 connections a worker keeps to APNs.
	APNSConns int `env:"CHIME_APNS_CONNS" envDefault:"4"`
	// APNSRate is APNs messages per minute over all workers; 0 for no limit.
	APNSRate int `env:"CHIME_APNS_RATE" envDefault:"0"`
	// FCMProject is the Firebase project ID.
	FCMProject string `env:"CHIME_FCM_PROJECT"`
	// FCMCredentialsFile is the service account's JSON key.
	FCMCredentialsFile string `env:"CHIME_FCM_CREDENTIALS_FILE"`
	// FCMEndpoint replaces the FCM v1 base URL (https://fcm.googleapis.com/v1).
	FCMEndpoint string `env:"CHIME_FCM_ENDPOINT"`
	// FCMRate is FCM messages per minute over all workers (FCM's default
	// quota per project); 0 for no limit.
	FCMRate int `env:"CHIME_FCM_RATE" envDefault:"600000"`
	// WebhookRate is web device webhooks per minute over all workers; 0 for
	// no limit.
	WebhookRate int `env:"CHIME_WEBHOOK_RATE" envDefault:"0"`
	// WebDeviceAllowCIDRs are address ranges web device endpoints may use
	// although they are not global (loopback, private, link-local...), as
	// CIDRs separated by commas ("127.0.0.0/8,::1/128" for local tests).
	// Empty: none, endpoints must be on the internet (package netguard).
	WebDeviceAllowCIDRs string `env:"CHIME_WEB_DEVICE_ALLOW_CIDRS"`
	// RetryFor bounds how long one chunk retries refused messages before the
	// worker retries the group later.
	RetryFor time.Duration `env:"CHIME_PUSH_RETRY_FOR" envDefault:"20s"`
}

// guard is the address policy of web device endpoints, at registration
// (the API) and at send time (workers). A bad list (check refuses it)
// allows nothing more.
func (c PushConfig) guard() *netguard.Policy {
	allow, _ := netguard.ParseCIDRs(c.WebDeviceAllowCIDRs)
	return netguard.New(allow)
}

func (c PushConfig) check() error {
	if c.APNSKeyFile != "" && (c.APNSKeyID == "" || c.APNSTeamID == "" || c.APNSTopic == "") {
		return errors.New("CHIME_APNS_KEY_ID, CHIME_APNS_TEAM_ID and CHIME_APNS_TOPIC are required with CHIME_APNS_KEY_FILE")
	}
	if c.FCMProject != "" && c.FCMCredentialsFile == "" {
		return errors.New("CHIME_FCM_CREDENTIALS_FILE is required with CHIME_FCM_PROJECT")
	}
	if c.APNSConns < 1 {
		return errors.New("CHIME_APNS_CONNS must be at least 1")
	}
	if c.APNSRate < 0 || c.FCMRate < 0 || c.WebhookRate < 0 {
		return errors.New("CHIME_APNS_RATE, CHIME_FCM_RATE and CHIME_WEBHOOK_RATE must not be negative")
	}
	if c.RetryFor <= 0 {
		return errors.New("CHIME_PUSH_RETRY_FOR must be a positive duration")
	}
	if _, err := netguard.ParseCIDRs(c.WebDeviceAllowCIDRs); err != nil {
		return fmt.Errorf("CHIME_WEB_DEVICE_ALLOW_CIDRS: %w", err)
	}
	return nil
}

// newPush builds the push sender and its channels.
func newPush(ctx context.Context, cfg Config, db *gorm.DB, rdb redis.UniversalClient, log *slog.Logger) (*push.Sender, error) {
	pc := cfg.Push
	channels := map[string]push.Channel{push.Webhook: webhook.NewDevices(
		webhook.DevicesConfig{Timeout: cfg.WebhookTimeout, Guard: pc.guard()}, log.With("channel", push.Webhook))}
	if pc.APNSKeyFile != "" {
		key, err := os.ReadFile(pc.APNSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("CHIME_APNS_KEY_FILE: %w", err)
		}
		var roots *x509.CertPool
		if pc.APNSCAFile != "" {
			pem, err := os.ReadFile(pc.APNSCAFile)
			if err != nil {
				return nil, fmt.Errorf("CHIME_APNS_CA_FILE: %w", err)
			}
			roots = x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				return nil, errors.New("CHIME_APNS_CA_FILE: no PEM certificate in it")
			}
		}
		ch, err := apns.New(apns.Config{Key: key, KeyID: pc.APNSKeyID, TeamID: pc.APNSTeamID, Topic: pc.APNSTopic,
			Host: pc.APNSHost, RootCAs: roots, Conns: pc.APNSConns})
		if err != nil {
			return nil, err
		}
		channels[push.APNs] = ch
	}
	if pc.FCMProject != "" {
		creds, err := os.ReadFile(pc.FCMCredentialsFile)
		if err != nil {
			return nil, fmt.Errorf("CHIME_FCM_CREDENTIALS_FILE: %w", err)
		}
		ch, err := fcm.New(ctx, fcm.Config{ProjectID: pc.FCMProject, Credentials: creds, Endpoint: pc.FCMEndpoint})
		if err != nil {
			return nil, err
		}
		channels[push.FCM] = ch
	}
	limits := map[string]redis_rate.Limit{}
	for name, perMinute := range map[string]int{push.APNs: pc.APNSRate, push.FCM: pc.FCMRate, push.Webhook: pc.WebhookRate} {
		if perMinute > 0 {
			limits[name] = redis_rate.PerMinute(perMinute)
		}
	}
	comp, mer := NewContent(cfg, rdb)
	return push.New(push.Config{Limits: limits, Prefix: cfg.Prefix, RetryFor: pc.RetryFor, Keyring: cfg.Keyring()}, db, rdb, channels,
		composer{comp}, merger{comp, mer}, clock.Real{}, log.With("channel", "push")), nil
}

// composer lets the push sender compose with package content: templates
// filled per device, in the device's language, processed as the tags ask.
type composer struct{ c *content.Composer }

var _ push.Composer = composer{}

func (a composer) Compose(b *sender.Batch, d push.Device, maxBytes int) (push.Message, error) {
	m, err := a.c.Compose(b, content.Device{UserID: d.UserID, Platform: d.Platform, Locale: d.Locale, MaxBytes: maxBytes})
	return push.Message{Title: m.Title, Body: m.Body, Data: m.Data}, err
}

// merger lets the push sender merge identical reminders with package
// content: the batch's content key, then one pipelined round trip per chunk.
type merger struct {
	c *content.Composer
	m *content.Merger
}

var _ push.Merger = merger{}

func (a merger) Merge(ctx context.Context, b *sender.Batch) ([]string, error) {
	key, err := a.c.ContentKey(b)
	if err != nil {
		return b.Users, fmt.Errorf("content key: %w", err)
	}
	return a.m.Filter(ctx, b.Users, key, strconv.FormatInt(b.Occurrence, 10))
}
