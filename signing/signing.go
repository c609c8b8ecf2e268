// Package signing keeps each app's keys for the tokens its users' clients
// connect to the gateway with: HS256 secrets made of 32 random bytes, each
// named by a key ID that tokens carry as their kid, stored in MySQL sealed
// under CHIME_SECRET_KEYS (package seal), so that a database dump does not
// hold them in the clear.
//
// An app signs with its current key. A rotation makes a new current key and
// gives the app's other keys an expiry after an overlap (tokens already
// handed out keep working meanwhile); from then on the gateway refuses what
// they signed, and closes the connections they opened. An overlap of zero
// ends the old keys at once: the answer to a leaked key.
//
// Gateways look keys up by ID and keep them in memory for CacheTTL.
// Rotations are announced on a Redis channel, and every gateway drops the
// keys announced at once; a gateway whose subscription was down drops its
// whole cache when the subscription is back, so none keeps a stale key
// longer than the reconnect.
package signing

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/store"
)

// Defaults and bounds.
const (
	// DefaultOverlap is how long the keys a rotation replaces stay valid.
	DefaultOverlap = 24 * time.Hour
	// DefaultCacheTTL is how long a gateway keeps a key it looked up.
	DefaultCacheTTL = 30 * time.Second
	// DefaultCacheSize is how many keys a gateway keeps in memory.
	DefaultCacheSize = 10000
	// MaxInForce is the most keys an app may have in force at once: its
	// current key and those within their overlap. A rotation beyond it is
	// refused (ErrTooManyKeys) unless its overlap is zero.
	MaxInForce = 5
)

// Errors callers branch on.
var (
	// ErrNoKeyring: CHIME_SECRET_KEYS is not set, so no key can be made or
	// opened.
	ErrNoKeyring = errors.New("no signing key can be made or opened: CHIME_SECRET_KEYS is not set")
	// ErrNotFound: no such key, or no such app.
	ErrNotFound = store.ErrNotFound
	// ErrTooManyKeys: the app already has MaxInForce keys in force.
	ErrTooManyKeys = store.ErrTooManySigningKeys
	// ErrOverlap: a rotation asked for an overlap out of bounds.
	ErrOverlap = errors.New("overlap out of bounds")
)

// Config configures the keys.
type Config struct {
	// Prefix starts the Redis channel rotations are announced on. Defaults
	// to "chime:".
	Prefix string
	// Overlap is how long after a rotation the keys it replaces stay valid,
	// when the rotation does not say, and the longest it may say. Defaults
	// to DefaultOverlap.
	Overlap time.Duration
	// CacheTTL is how long a looked-up key is kept in memory. Defaults to
	// DefaultCacheTTL.
	CacheTTL time.Duration
	// CacheSize bounds the keys kept in memory; the least recently used go
	// first. Defaults to DefaultCacheSize.
	CacheSize int
}

// Key is a signing key. Secret is empty in listings.
type Key struct {
	// ID is the kid of the tokens the key signs.
	ID  string `json:"kid"`
	App int64  `json:"-"`
	// Secret is the HMAC key, as its bytes: 47 ASCII characters, "sks_"
	// and 32 random bytes in unpadded base64url.
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is when the key stops being valid; nil for a current key.
	ExpiresAt *time.Time `json:"expires_at"`
}

// Valid tells whether the key is still in force at now.
func (k Key) Valid(now time.Time) bool { return k.ExpiresAt == nil || now.Before(*k.ExpiresAt) }

// Keys makes, rotates, lists and looks up apps' signing keys.
type Keys struct {
	cfg   Config
	db    *gorm.DB
	rdb   redis.UniversalClient
	ring  *seal.Keyring
	log   *slog.Logger
	cache *lru.Cache[string, cached]
}

type cached struct {
	key   Key
	until time.Time
}

// New returns the keys stored in db, sealed with ring (nil: none can be made
// or opened), announced through rdb.
func New(cfg Config, db *gorm.DB, rdb redis.UniversalClient, ring *seal.Keyring, log *slog.Logger) *Keys {
	if cfg.Prefix == "" {
		cfg.Prefix = "chime:"
	}
	if cfg.Overlap <= 0 {
		cfg.Overlap = DefaultOverlap
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	cache, _ := lru.New[string, cached](cfg.CacheSize) // errs only for a size below 1
	return &Keys{cfg: cfg, db: db, rdb: rdb, ring: ring, log: log, cache: cache}
}

// Overlap is how long replaced keys stay valid by default, and at most.
func (k *Keys) Overlap() time.Duration { return k.cfg.Overlap }

// Channel is the Redis channel rotations are announced on.
func (k *Keys) Channel() string { return k.cfg.Prefix + "signing-keys" }

// ValidID tells whether id has the form of a key ID ("sk_" and 24 hex
// digits), so that garbage is refused without a query.
func ValidID(id string) bool {
	hexPart, ok := strings.CutPrefix(id, "sk_")
	if !ok || len(hexPart) != 24 {
		return false
	}
	_, err := hex.DecodeString(hexPart)
	return err == nil && strings.ToLower(hexPart) == hexPart
}

// aad binds a sealed secret to its row.
func aad(app int64, id string) []byte {
	return []byte("signing-key:" + strconv.FormatInt(app, 10) + ":" + id)
}

// newKey makes a key for app and its sealed row.
func (k *Keys) newKey(app int64, now time.Time) (Key, store.SigningKey, error) {
	if k.ring == nil {
		return Key{}, store.SigningKey{}, ErrNoKeyring
	}
	var id [12]byte
	var secret [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Key{}, store.SigningKey{}, err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return Key{}, store.SigningKey{}, err
	}
	key := Key{ID: "sk_" + hex.EncodeToString(id[:]), App: app, Secret: "sks_" + base64.RawURLEncoding.EncodeToString(secret[:]),
		CreatedAt: now.UTC().Truncate(time.Millisecond)}
	sealed, err := k.ring.Seal([]byte(key.Secret), aad(app, key.ID))
	if err != nil {
		return Key{}, store.SigningKey{}, fmt.Errorf("seal signing key: %w", err)
	}
	return key, store.SigningKey{ID: key.ID, AppID: app, Secret: sealed, CreatedAt: key.CreatedAt}, nil
}

// open turns a stored row into a key with its secret.
func (k *Keys) open(row store.SigningKey) (Key, error) {
	secret, err := k.ring.Open(row.Secret, aad(row.AppID, row.ID))
	if errors.Is(err, seal.ErrNoKeys) {
		return Key{}, ErrNoKeyring
	}
	if err != nil {
		return Key{}, fmt.Errorf("open signing key %s: %w", row.ID, err)
	}
	key := listed(row)
	key.Secret = string(secret)
	return key, nil
}

func listed(row store.SigningKey) Key {
	key := Key{ID: row.ID, App: row.AppID, CreatedAt: row.CreatedAt.UTC()}
	if row.ExpiresAt != nil {
		t := row.ExpiresAt.UTC()
		key.ExpiresAt = &t
	}
	return key
}

// Current returns the app's current key with its secret, making the app's
// first key if it has none.
func (k *Keys) Current(ctx context.Context, app int64, now time.Time) (Key, error) {
	row, err := store.CurrentSigningKey(ctx, k.db, app)
	if errors.Is(err, store.ErrNotFound) {
		var candidate store.SigningKey
		if _, candidate, err = k.newKey(app, now); err != nil {
			return Key{}, err
		}
		row, err = store.FirstSigningKey(ctx, k.db, candidate)
	}
	if err != nil {
		return Key{}, err
	}
	return k.open(row)
}

// Rotate makes a new current key for app and returns it with its secret
// (shown this once). The app's other keys expire overlap after now (nil:
// Config.Overlap); overlap may be from 0 (they end now) to Config.Overlap.
func (k *Keys) Rotate(ctx context.Context, app int64, overlap *time.Duration, now time.Time) (Key, error) {
	d := k.cfg.Overlap
	if overlap != nil {
		d = *overlap
	}
	if d < 0 || d > k.cfg.Overlap {
		return Key{}, fmt.Errorf("%w: the overlap must be from 0s to %s", ErrOverlap, k.cfg.Overlap)
	}
	key, row, err := k.newKey(app, now)
	if err != nil {
		return Key{}, err
	}
	retired, err := store.RotateSigningKey(ctx, k.db, row, key.CreatedAt.Add(d), MaxInForce)
	if err != nil {
		return Key{}, err
	}
	k.announce(ctx, retired)
	return key, nil
}

// announce tells every gateway to drop the keys whose expiry changed.
func (k *Keys) announce(ctx context.Context, ids []string) {
	if len(ids) == 0 || k.rdb == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := k.rdb.Publish(ctx, k.Channel(), strings.Join(ids, ",")).Err(); err != nil {
		// The rotation stands; gateways see it within their cache TTL.
		k.log.Warn("announce signing key rotation", "keys", len(ids), "err", err)
	}
}

// List returns the app's keys in force at now, newest first, without
// secrets.
func (k *Keys) List(ctx context.Context, app int64, now time.Time) ([]Key, error) {
	rows, err := store.SigningKeys(ctx, k.db, app, now)
	if err != nil {
		return nil, err
	}
	out := make([]Key, len(rows))
	for i, r := range rows {
		out[i] = listed(r)
	}
	return out, nil
}

// Lookup returns the key named id with its secret, whether or not it is
// still valid (see Key.Valid), from memory when it was looked up within
// CacheTTL. An ID of the wrong form is ErrNotFound without a query.
func (k *Keys) Lookup(ctx context.Context, id string, now time.Time) (Key, error) {
	if !ValidID(id) {
		return Key{}, ErrNotFound
	}
	if c, ok := k.cache.Get(id); ok && now.Before(c.until) {
		return c.key, nil
	}
	row, err := store.SigningKeyByID(ctx, k.db, id)
	if err != nil {
		return Key{}, err
	}
	key, err := k.open(row)
	if err != nil {
		return Key{}, err
	}
	k.cache.Add(id, cached{key: key, until: now.Add(k.cfg.CacheTTL)})
	return key, nil
}

// Watch drops from memory the keys rotations announce, until ctx ends. It
// drops every key when its subscription is made again after Redis was
// unreachable, since announcements made meanwhile are lost.
func (k *Keys) Watch(ctx context.Context) error {
	sub := k.rdb.Subscribe(ctx, k.Channel())
	defer sub.Close()
	ch := sub.ChannelWithSubscriptions()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-ch:
			switch m := m.(type) {
			case *redis.Subscription:
				k.cache.Purge()
			case *redis.Message:
				for _, id := range strings.Split(m.Payload, ",") {
					k.cache.Remove(id)
				}
			}
		}
	}
}
