package inbox

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chime-dev/chime/keyspace"
)

// Announcement is a message to every user of a region. IDs increase by one
// per region, so a client that keeps the last ID it saw asks for the newer
// ones.
type Announcement struct {
	ID        int64           `json:"id"`
	Title     string          `json:"title"`
	Body      string          `json:"body"`
	Data      json.RawMessage `json:"data,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
}

// AnnouncementConfig configures announcements.
type AnnouncementConfig struct {
	// Prefix starts every key. Defaults to keyspace.DefaultPrefix.
	Prefix string
	// Keep is how many announcements a region keeps; older ones are
	// dropped. Defaults to 1000.
	Keep int
}

// Announcements stores region announcements in Redis: per region a counter
// (INCR gives the next ID) and a sorted set of the announcements by ID, both
// hash-tagged by {app:region}. A cursor read is ZRANGE BYSCORE (after +inf.
type Announcements struct {
	cfg AnnouncementConfig
	rdb redis.UniversalClient
}

// NewAnnouncements returns the announcement store.
func NewAnnouncements(cfg AnnouncementConfig, rdb redis.UniversalClient) *Announcements {
	cfg.Prefix = cmp.Or(cfg.Prefix, keyspace.DefaultPrefix)
	if cfg.Keep == 0 {
		cfg.Keep = 1000
	}
	return &Announcements{cfg: cfg, rdb: rdb}
}

func (a *Announcements) keys(app int64, region string) []string {
	tag := fmt.Sprintf("%s{%d:region:%s}:", a.cfg.Prefix, app, region)
	return []string{tag + "seq", tag + "ann"}
}

// post numbers and stores one announcement. ARGV body with "id":0 as its
// first field, keep.
var post = redis.NewScript(`
local id = redis.call('INCR', KEYS[1])
local body = string.gsub(ARGV[1], '^{"id":0', '{"id":' .. id, 1)
redis.call('ZADD', KEYS[2], id, body)
local n = redis.call('ZCARD', KEYS[2])
local keep = tonumber(ARGV[2])
if n > keep then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - keep - 1) end
return id`)

// Post stores an announcement for region and returns it with its ID.
func (a *Announcements) Post(ctx context.Context, app int64, region string, an Announcement) (Announcement, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	an.ID = 0
	body, err := json.Marshal(an)
	if err != nil {
		return an, fmt.Errorf("encode announcement: %w", err)
	}
	id, err := post.Run(ctx, a.rdb, a.keys(app, region), body, a.cfg.Keep).Int64()
	if err != nil {
		return an, fmt.Errorf("post announcement: %w", err)
	}
	an.ID = id
	return an, nil
}

// After returns up to limit announcements of region with IDs above after,
// oldest first, and the cursor to send next time (the last ID returned, or
// after when none). With after < 0 (a client new to the region) it returns
// none and the newest ID as the cursor: a new user starts at the newest.
func (a *Announcements) After(ctx context.Context, app int64, region string, after int64, limit int) ([]Announcement, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	k := a.keys(app, region)
	if after < 0 {
		n, err := a.rdb.Get(ctx, k[0]).Int64()
		if err != nil && err != redis.Nil {
			return nil, 0, fmt.Errorf("read announcements: %w", err)
		}
		return []Announcement{}, n, nil
	}
	raw, err := a.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: k[1], Start: "(" + strconv.FormatInt(after, 10), Stop: "+inf", ByScore: true, Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("read announcements: %w", err)
	}
	out := make([]Announcement, 0, len(raw))
	cursor := after
	for _, s := range raw {
		var an Announcement
		if err := json.Unmarshal([]byte(s), &an); err != nil {
			return nil, 0, fmt.Errorf("decode announcement: %w", err)
		}
		out = append(out, an)
		cursor = an.ID
	}
	return out, cursor, nil
}

// cursorKey holds a user's cursor per region (a hash), for clients that
// let the server keep it.
func (a *Announcements) cursorKey(app int64, user string) string {
	return fmt.Sprintf("%s{%d:%s}:anncur", a.cfg.Prefix, app, user)
}

// cursorTTL is how long a user's cursors are kept after their last read: a
// user away longer starts again at the newest.
const cursorTTL = 30 * 24 * time.Hour

// Cursor returns the last announcement ID of region the server recorded for
// user, or -1 when none is recorded.
func (a *Announcements) Cursor(ctx context.Context, app int64, user, region string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := a.rdb.HGet(ctx, a.cursorKey(app, user), region).Int64()
	if err == redis.Nil {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read announcement cursor: %w", err)
	}
	return n, nil
}

// SetCursor records user's cursor for region.
func (a *Announcements) SetCursor(ctx context.Context, app int64, user, region string, cursor int64) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	key := a.cursorKey(app, user)
	_, err := a.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, region, cursor)
		p.PExpire(ctx, key, cursorTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("record announcement cursor: %w", err)
	}
	return nil
}
