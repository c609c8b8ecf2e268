package chime

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"syscall"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/gateway"
	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/presence"
	"github.com/chime-dev/chime/signing"
	"github.com/chime-dev/chime/status"
)

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
		AckFlush: cfg.Online.AckFlush, AckBatch: cfg.Online.AckBatch,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Opens:           cfg.Opens(rdb, db, clk, log),
	}, rdb, cfg.Presence(rdb), cfg.Inbox(rdb), cfg.Status(rdb, db), cfg.SigningKeys(db, rdb, log), clk, log, ln)
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
