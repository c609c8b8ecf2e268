package chime

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/gateway"
	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/presence"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/sender/online"
	"github.com/chime-dev/chime/signing"
	"github.com/chime-dev/chime/status"
	"github.com/chime-dev/chime/store"
)

// OnlineConfig configures the gateway, presence, the inbox and delivery
// status. The README's configuration table lists the same.
type OnlineConfig struct {
	// Enabled makes workers deliver over the gateways to online users, and
	// through the CHIME_SENDER channel (plus the inbox) to offline ones.
	Enabled bool `env:"CHIME_ONLINE" envDefault:"false"`
	// GatewayAddr is where cmd/gateway listens.
	GatewayAddr string `env:"CHIME_GATEWAY_ADDR" envDefault:":8081"`
	// SigningKeyOverlap is how long after a rotation an app's replaced
	// signing keys stay valid, unless the rotation asks for less. 0 means
	// signing.DefaultOverlap (24h).
	SigningKeyOverlap time.Duration `env:"CHIME_SIGNING_KEY_OVERLAP"`
	// TokenMaxLifetime is the longest a client token may live (exp after
	// iat, and after it is presented); the API's tokens live no longer. 0
	// means gateway.DefaultMaxTokenLifetime (24h).
	TokenMaxLifetime time.Duration `env:"CHIME_TOKEN_MAX_LIFETIME"`
	// MaxConnsPerUser is the most connections one user of an app may hold
	// on one gateway instance. 0 means gateway.DefaultMaxConnsPerUser (10).
	MaxConnsPerUser int `env:"CHIME_GATEWAY_MAX_CONNS_PER_USER"`
	// HandshakeRate is how many handshakes per second a gateway takes from
	// one remote address, HandshakeBurst how many at once. 0 means
	// gateway.DefaultHandshakeRate (10) and gateway.DefaultHandshakeBurst
	// (50).
	HandshakeRate  float64 `env:"CHIME_GATEWAY_HANDSHAKE_RATE"`
	HandshakeBurst int     `env:"CHIME_GATEWAY_HANDSHAKE_BURST"`
	// Heartbeat is how often the gateway pings clients and refreshes their
	// presence.
	Heartbeat time.Duration `env:"CHIME_HEARTBEAT_INTERVAL" envDefault:"10s"`
	// PingTimeout is how long a client has to answer a ping.
	PingTimeout time.Duration `env:"CHIME_PING_TIMEOUT" envDefault:"5s"`
	// PresenceTTL is how long a connection counts as online after its last
	// refresh: the bound on how long a dead gateway's users look online.
	PresenceTTL time.Duration `env:"CHIME_PRESENCE_TTL" envDefault:"30s"`
	// InboxCap is the most messages kept per user, pending and unread each.
	InboxCap int `env:"CHIME_INBOX_CAP" envDefault:"100"`
	// InboxTTL is how long a pending (not yet pushed) message is kept.
	InboxTTL time.Duration `env:"CHIME_INBOX_TTL" envDefault:"72h"`
	// UnreadTTL is how long an acknowledged message is kept unread.
	UnreadTTL time.Duration `env:"CHIME_UNREAD_TTL" envDefault:"24h"`
	// StatusRetention is how long per-user delivery status is kept.
	StatusRetention time.Duration `env:"CHIME_STATUS_RETENTION" envDefault:"168h"`
	// StatusPerUser is the most per-user status entries kept.
	StatusPerUser int `env:"CHIME_STATUS_PER_USER" envDefault:"200"`
}

func (c OnlineConfig) validate() error {
	for name, d := range map[string]time.Duration{
		"CHIME_HEARTBEAT_INTERVAL": c.Heartbeat, "CHIME_PING_TIMEOUT": c.PingTimeout, "CHIME_PRESENCE_TTL": c.PresenceTTL,
		"CHIME_INBOX_TTL": c.InboxTTL, "CHIME_UNREAD_TTL": c.UnreadTTL, "CHIME_STATUS_RETENTION": c.StatusRetention,
	} {
		if d <= 0 {
			return fmt.Errorf("%s must be a positive duration, not %s", name, d)
		}
	}
	if c.PresenceTTL <= c.Heartbeat+c.PingTimeout {
		return fmt.Errorf("CHIME_PRESENCE_TTL (%s) must be longer than CHIME_HEARTBEAT_INTERVAL + CHIME_PING_TIMEOUT (%s)", c.PresenceTTL, c.Heartbeat+c.PingTimeout)
	}
	for name, d := range map[string]time.Duration{"CHIME_SIGNING_KEY_OVERLAP": c.SigningKeyOverlap, "CHIME_TOKEN_MAX_LIFETIME": c.TokenMaxLifetime} {
		if d < 0 {
			return fmt.Errorf("%s must be a positive duration (or 0 for the default), not %s", name, d)
		}
	}
	if c.MaxConnsPerUser < 0 || c.HandshakeRate < 0 || c.HandshakeBurst < 0 {
		return errors.New("CHIME_GATEWAY_MAX_CONNS_PER_USER, CHIME_GATEWAY_HANDSHAKE_RATE and CHIME_GATEWAY_HANDSHAKE_BURST must be positive (or 0 for the default)")
	}
	if c.InboxCap < 1 || c.InboxCap > 5000 {
		return fmt.Errorf("CHIME_INBOX_CAP must be from 1 to 5000, not %d", c.InboxCap)
	}
	if c.StatusPerUser < 1 || c.StatusPerUser > 5000 {
		return fmt.Errorf("CHIME_STATUS_PER_USER must be from 1 to 5000, not %d", c.StatusPerUser)
	}
	return nil
}

// Presence returns the presence registry the configuration describes.
func (c Config) Presence(rdb redis.UniversalClient) *presence.Registry {
	return presence.New(presence.Config{Prefix: c.Prefix, TTL: c.Online.PresenceTTL}, rdb)
}

// Inbox returns the inbox store the configuration describes.
func (c Config) Inbox(rdb redis.UniversalClient) *inbox.Store {
	return inbox.New(inbox.Config{Prefix: c.Prefix, Cap: c.Online.InboxCap, TTL: c.Online.InboxTTL, UnreadTTL: c.Online.UnreadTTL}, rdb)
}

// Status returns the status recorder the configuration describes.
func (c Config) Status(rdb redis.UniversalClient, db *gorm.DB) *status.Recorder {
	return status.New(status.Config{Prefix: c.Prefix, Retention: c.Online.StatusRetention, PerUser: c.Online.StatusPerUser}, rdb, db)
}

// SigningKeys returns the apps' signing keys the configuration describes.
func (c Config) SigningKeys(db *gorm.DB, rdb redis.UniversalClient, log *slog.Logger) *signing.Keys {
	return signing.New(signing.Config{Prefix: c.Prefix, Overlap: c.Online.SigningKeyOverlap}, db, rdb, c.Keyring(), log)
}

// withOnline gives the API the inbox, announcement, status and signing key
// stores.
func (c Config) withOnline(ac api.Config, db *gorm.DB, rdb redis.UniversalClient, log *slog.Logger) api.Config {
	ac.Inbox, ac.Status, ac.SigningKeys = c.Inbox(rdb), c.Status(rdb, db), c.SigningKeys(db, rdb, log.With("part", "signing"))
	ac.Announcements = inbox.NewAnnouncements(inbox.AnnouncementConfig{Prefix: c.Prefix}, rdb)
	ac.TokenTTL = min(api.DefaultTokenTTL, cmp.Or(c.Online.TokenMaxLifetime, gateway.DefaultMaxTokenLifetime))
	return ac
}

// NewGateway assembles a gateway instance. Its instance ID is the replica ID
// with a random suffix, so a restarted process never reuses the stream of
// its previous life. If ln is nil it listens on CHIME_GATEWAY_ADDR.
func NewGateway(cfg Config, db *gorm.DB, rdb redis.UniversalClient, clk clock.Clock, log *slog.Logger, ln net.Listener) (*gateway.Gateway, error) {
	if cfg.Keyring() == nil {
		return nil, errors.New("CHIME_SECRET_KEYS is required by the gateway: it opens the apps' signing keys with them")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	log = log.With("component", "gateway")
	return gateway.New(gateway.Config{
		Addr: cfg.Online.GatewayAddr, Instance: cfg.ReplicaID + "-" + hex.EncodeToString(b[:]), Prefix: cfg.Prefix,
		HeartbeatInterval: cfg.Online.Heartbeat, PingTimeout: cfg.Online.PingTimeout,
		MaxTokenLifetime: cfg.Online.TokenMaxLifetime, MaxConnsPerUser: cfg.Online.MaxConnsPerUser,
		HandshakeRate: cfg.Online.HandshakeRate, HandshakeBurst: cfg.Online.HandshakeBurst,
	}, rdb, cfg.Presence(rdb), cfg.Inbox(rdb), cfg.Status(rdb, db), cfg.SigningKeys(db, rdb, log), clk, log, ln)
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

// RaiseFileLimit raises the process's open-file limit to its hard limit: a
// gateway holds one descriptor per client.
func RaiseFileLimit(log *slog.Logger) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			log.Warn("raise open-file limit", "err", err)
			return
		}
	}
	log.Info("open-file limit", "limit", l.Cur)
}
