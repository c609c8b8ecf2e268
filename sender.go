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
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/sender/apns"
	"github.com/chime-dev/chime/sender/fcm"
	"github.com/chime-dev/chime/sender/logging"
	"github.com/chime-dev/chime/sender/online"
	"github.com/chime-dev/chime/sender/push"
	"github.com/chime-dev/chime/sender/webhook"
	"github.com/chime-dev/chime/store"
)

// The channels the push sender dispatches to.
var (
	_ push.Channel = (*apns.Channel)(nil)
	_ push.Channel = (*fcm.Channel)(nil)
	_ push.Channel = (*webhook.Devices)(nil)
)

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
	m, err := a.c.Compose(&b.Message, content.Device{UserID: d.UserID, Platform: d.Platform, Locale: d.Locale, MaxBytes: maxBytes})
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
	key, err := a.c.ContentKey(&b.Message)
	if err != nil {
		return b.Users, fmt.Errorf("content key: %w", err)
	}
	return a.m.Filter(ctx, b.Users, key, strconv.FormatInt(b.Occurrence, 10))
}

// NewSender builds the delivery channel the configuration names. The push
// channel reads devices from db and shares rate limits through rdb.
func NewSender(ctx context.Context, cfg Config, db *gorm.DB, rdb redis.UniversalClient, log *slog.Logger) (sender.Sender, error) {
	switch cfg.Sender {
	case "push":
		return newPush(ctx, cfg, db, rdb, log)
	case "webhook":
		return webhook.New(webhook.Config{URL: cfg.WebhookURL, Timeout: cfg.WebhookTimeout, Secret: cfg.WebhookSecret}, log.With("channel", "webhook"))
	default:
		return logging.New(log.With("channel", "log")), nil
	}
}

// NewContent assembles what push channels compose messages with: the
// composer, with the configured tag processors, and the merger of
// identical reminders (CHIME_MERGE_WINDOW).
func NewContent(cfg Config, rdb redis.UniversalClient) (*content.Composer, *content.Merger) {
	return content.NewComposer(content.Config{Processors: cfg.Processors()}),
		content.NewMerger(content.MergerConfig{Prefix: cfg.Prefix, Window: cfg.MergeWindow}, rdb)
}

// onlineSender wraps fallback in the online channel when it is enabled.
func onlineSender(cfg Config, db *gorm.DB, rdb redis.UniversalClient, fallback sender.Sender, clk clock.Clock, log *slog.Logger) sender.Sender {
	if !cfg.Online.Enabled {
		return fallback
	}
	return online.New(online.Config{Prefix: cfg.Prefix}, rdb, cfg.Presence(rdb), cfg.Inbox(rdb), cfg.Status(rdb, db),
		contacts{db}, fallback, clk, log.With("channel", "online"))
}

// contacts reads associated users from MySQL.
type contacts struct{ db *gorm.DB }

var _ online.Contacts = contacts{}

func (c contacts) ContactsOf(ctx context.Context, app int64, users []string) (map[string][]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var rows []store.Contact
	if err := c.db.WithContext(ctx).Where("app_id = ? AND user_id IN ?", app, users).Order("user_id, contact_id").Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make(map[string][]string)
	for _, r := range rows {
		out[r.UserID] = append(out[r.UserID], r.ContactID)
	}
	return out, nil
}
