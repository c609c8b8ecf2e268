package content

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chime-dev/chime/keyspace"
)

// DefaultMergeWindow is the merge window a deployment runs with unless
// CHIME_MERGE_WINDOW says otherwise; a MergerConfig's zero Window is off.
const DefaultMergeWindow = 10 * time.Minute

// MergerConfig configures a Merger.
type MergerConfig struct {
	// Prefix starts the merger's Redis keys ("<prefix>merge:<hash>").
	// Defaults to keyspace.DefaultPrefix.
	Prefix string
	// Window is how long after a user was sent a content an identical one
	// is dropped; 0 turns merging off. Defaults to 0 (CHIME_MERGE_WINDOW
	// sets it, DefaultMergeWindow unless told otherwise).
	Window time.Duration
	// Timeout bounds one chunk's round trip. Defaults to 5s.
	Timeout time.Duration
}

// Merger drops users who were already sent the same content within the
// window. It costs one pipelined round trip per chunk and about 100 bytes
// of Redis per (user, content) for the length of the window.
type Merger struct {
	cfg MergerConfig
	rdb redis.UniversalClient
}

// NewMerger returns a Merger on rdb.
func NewMerger(cfg MergerConfig, rdb redis.UniversalClient) *Merger {
	cfg.Prefix = cmp.Or(cfg.Prefix, keyspace.DefaultPrefix)
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	return &Merger{cfg: cfg, rdb: rdb}
}

// Filter returns the users to send contentKey (Composer.ContentKey) to,
// in their order: those who were not sent it within the window by another
// origin. origin names the delivery (the occurrence ID): a retry of the
// same occurrence keeps its users, so a chunk that failed half-way is sent
// again in full. Each user is marked in the same round trip, one
// SET NX GET per user in one pipeline.
//
// An empty contentKey (a reminder tagged no-merge) keeps every user. On
// error Filter returns every user with the error, so a caller that logs it
// and goes on delivers without merging rather than not at all.
func (m *Merger) Filter(ctx context.Context, users []string, contentKey, origin string) ([]string, error) {
	if m.cfg.Window <= 0 || len(users) == 0 || contentKey == "" {
		return users, nil
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	cmds := make([]*redis.StatusCmd, len(users))
	_, err := m.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range users {
			cmds[i] = p.SetArgs(ctx, m.key(u, contentKey), origin, redis.SetArgs{Mode: "NX", Get: true, TTL: m.cfg.Window})
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return users, fmt.Errorf("merge: %w", err)
	}
	keep := make([]string, 0, len(users))
	for i, cmd := range cmds {
		prev, err := cmd.Result()
		switch {
		case errors.Is(err, redis.Nil): // first of its kind in the window
			keep = append(keep, users[i])
		case err != nil:
			return users, fmt.Errorf("merge: %w", err)
		case prev == origin: // a retry of the same delivery
			keep = append(keep, users[i])
		}
	}
	return keep, nil
}

func (m *Merger) key(user, contentKey string) string {
	h := sha256.New()
	h.Write([]byte(contentKey))
	h.Write([]byte{0})
	h.Write([]byte(user))
	return m.cfg.Prefix + "merge:" + hex.EncodeToString(h.Sum(nil)[:16])
}
