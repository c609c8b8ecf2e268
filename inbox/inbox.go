// Package inbox keeps, in Redis, the messages a user has not been pushed yet
// and those pushed but not read, and the announcements of each region.
//
// Per user (keys hash-tagged {app:user}, so every script touches one Redis
// Cluster slot):
//
//   - P{app:user}:np, "not yet pushed": a sorted set of message IDs by the
//     time they were stored. Every personal message goes here first, also
//     for a user who is online, and leaves only when the client acknowledges
//     it (over the socket or the API). A message sent to a gateway that dies
//     before the client's ack is therefore still here, and is replayed when
//     the user connects again. The set is capped (Config.Cap): storing a
//     message into a full set drops the oldest.
//   - P{app:user}:unread: acknowledged (delivered) messages not yet read. A
//     read receipt removes a message from both sets. Capped the same way.
//   - P{app:user}:msgs: the message bodies, by ID, while a message is in
//     either set.
//
// A pending message is kept TTL after it was stored, an unread one
// UnreadTTL after it was acknowledged; older ones are no longer returned and
// are dropped at the next write. All three keys expire the longer of the two
// after the last write, so a user who does not come back finds an empty
// inbox and costs nothing. Messages have deterministic IDs, so a worker that
// stores the same chunk twice (after a crash) stores each message once, and
// a message already acknowledged is not stored again.
package inbox

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chime-dev/chime/internal/rscript"
	"github.com/chime-dev/chime/keyspace"
)

// Message is one personal message as stored and as sent to clients.
type Message struct {
	ID         string          `json:"id"`
	Occurrence int64           `json:"occurrence"`
	Reminder   string          `json:"reminder"`
	Title      string          `json:"title"`
	Body       string          `json:"body"`
	Location   string          `json:"location,omitempty"`
	FireAt     time.Time       `json:"fire_at"`
	Data       json.RawMessage `json:"data,omitempty"`
	// ForUser is set on the copy sent to an associated user (a contact) of
	// a user who was offline: the user it was meant for.
	ForUser string `json:"for_user,omitempty"`
	// StoredAt is when the message entered the inbox.
	StoredAt time.Time `json:"stored_at"`
	// ExpiresAt ends the reminder's validity window: a message still
	// pending after it is not replayed (stale reminders are worse than
	// none).
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Expired reports whether m's validity window ended before now.
func (m Message) Expired(now time.Time) bool { return m.ExpiresAt != nil && now.After(*m.ExpiresAt) }

// MessageID is the ID of occurrence's message to its own subscriber.
func MessageID(occurrence int64) string { return fmt.Sprintf("o%d", occurrence) }

// ContactMessageID is the ID of the copy of occurrence's message sent to a
// contact of user.
func ContactMessageID(occurrence int64, user string) string {
	return fmt.Sprintf("o%d-for-%s", occurrence, user)
}

// OccurrenceOf returns the occurrence a message ID belongs to, or 0.
func OccurrenceOf(id string) int64 {
	var o int64
	if len(id) < 2 || id[0] != 'o' {
		return 0
	}
	for _, c := range id[1:] {
		if c < '0' || c > '9' {
			break
		}
		o = o*10 + int64(c-'0')
	}
	return o
}

// Defaults of the Config.
const (
	DefaultCap       = 100
	DefaultTTL       = 72 * time.Hour
	DefaultUnreadTTL = 24 * time.Hour
)

// Config configures a store.
type Config struct {
	// Prefix starts every key. Defaults to keyspace.DefaultPrefix.
	Prefix string
	// Cap is the most messages kept per user in each of the two sets.
	// Defaults to DefaultCap (100).
	Cap int
	// TTL is how long a pending message is kept. Defaults to
	// DefaultTTL (72h).
	TTL time.Duration
	// UnreadTTL is how long an acknowledged message is kept unread.
	// Defaults to DefaultUnreadTTL (24h).
	UnreadTTL time.Duration
}

// Store is the per-user inbox.
type Store struct {
	cfg Config
	rdb redis.UniversalClient
}

// New returns a store.
func New(cfg Config, rdb redis.UniversalClient) *Store {
	cfg.Prefix = cmp.Or(cfg.Prefix, keyspace.DefaultPrefix)
	cfg.Cap = cmp.Or(cfg.Cap, DefaultCap)
	cfg.TTL = cmp.Or(cfg.TTL, DefaultTTL)
	cfg.UnreadTTL = cmp.Or(cfg.UnreadTTL, DefaultUnreadTTL)
	return &Store{cfg: cfg, rdb: rdb}
}

// Config returns the store's configuration with its defaults.
func (s *Store) Config() Config { return s.cfg }

func (s *Store) keys(app int64, user string) []string {
	tag := fmt.Sprintf("%s{%d:%s}:", s.cfg.Prefix, app, user)
	return []string{tag + "np", tag + "unread", tag + "msgs"}
}

// The scripts share KEYS np, unread, msgs. A body is deleted when its ID
// leaves both sets.
const trimFn = `
local function trim(set, other, cap, dropped)
  local n = redis.call('ZCARD', set)
  if n <= cap then return end
  local ids = redis.call('ZRANGE', set, 0, n - cap - 1)
  redis.call('ZREMRANGEBYRANK', set, 0, n - cap - 1)
  for _, id in ipairs(ids) do
    if not redis.call('ZSCORE', other, id) then redis.call('HDEL', KEYS[3], id) end
    table.insert(dropped, id)
  end
end
local function expire(set, other, cutoff, dropped)
  local ids = redis.call('ZRANGE', set, '-inf', cutoff, 'BYSCORE')
  if #ids == 0 then return end
  redis.call('ZREMRANGEBYSCORE', set, '-inf', cutoff)
  for _, id in ipairs(ids) do
    if not redis.call('ZSCORE', other, id) then redis.call('HDEL', KEYS[3], id) end
    table.insert(dropped, id)
  end
end
`

// add stores one message unless it is already in either set, and returns the
// IDs of the messages it dropped (too old, or over the cap).
// ARGV id, body, now ms, cap, ttl ms, unread ttl ms.
var add = redis.NewScript(trimFn + `
local now, cap, ttl, uttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local dropped = {}
expire(KEYS[1], KEYS[2], now - ttl, dropped)
expire(KEYS[2], KEYS[1], now - uttl, dropped)
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
end
trim(KEYS[1], KEYS[2], cap, dropped)
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], math.max(ttl, uttl)) end
return dropped`)

// list returns {pending ids, pending bodies, unread ids, unread bodies},
// oldest first, leaving out messages older than the cutoffs. ARGV pending
// cutoff ms, unread cutoff ms.
var list = redis.NewScript(`
local out = {}
for i = 1, 2 do
  local ids = redis.call('ZRANGE', KEYS[i], '(' .. ARGV[i], '+inf', 'BYSCORE')
  local bodies = {}
  if #ids > 0 then bodies = redis.call('HMGET', KEYS[3], unpack(ids)) end
  table.insert(out, ids)
  table.insert(out, bodies)
end
return out`)

// deliver moves IDs from np to unread (dated now) and returns those it
// moved; with no IDs it moves all. ARGV now ms, cap, keep ms, ids...
var deliver = redis.NewScript(trimFn + `
local ids = {}
if #ARGV > 3 then
  for i = 4, #ARGV do table.insert(ids, ARGV[i]) end
else
  ids = redis.call('ZRANGE', KEYS[1], 0, -1)
end
local moved = {}
for _, id in ipairs(ids) do
  if redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('ZADD', KEYS[2], ARGV[1], id)
    table.insert(moved, id)
  end
end
if #moved > 0 then
  local dropped = {}
  trim(KEYS[2], KEYS[1], tonumber(ARGV[2]), dropped)
  for i = 2, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3], 'GT') end
end
return moved`)

// read removes IDs from both sets and returns those it removed. ARGV ids...
var read = redis.NewScript(`
local done = {}
for _, id in ipairs(ARGV) do
  local a = redis.call('ZREM', KEYS[1], id)
  local b = redis.call('ZREM', KEYS[2], id)
  if a + b > 0 then
    redis.call('HDEL', KEYS[3], id)
    table.insert(done, id)
  end
end
return done`)

// Scripts are the scripts AddCmd queues, for rscript.Pipelined.
func Scripts() []*redis.Script { return []*redis.Script{add, list, deliver, read} }

// Encode returns m as stored at now: the body AddCmd stores and gateways
// send to clients.
func Encode(m Message, now time.Time) (json.RawMessage, error) {
	m.StoredAt = now.UTC()
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode message: %w", err)
	}
	return body, nil
}

// AddCmd queues storing the message id, encoded as body (by Encode at now),
// for user on p; Dropped reads its answer.
func (s *Store) AddCmd(ctx context.Context, p redis.Pipeliner, app int64, user, id string, body json.RawMessage, now time.Time) *redis.Cmd {
	return add.EvalSha(ctx, p, s.keys(app, user), s.addArgs(id, body, now)...)
}

func (s *Store) addArgs(id string, body json.RawMessage, now time.Time) []any {
	return []any{id, []byte(body), now.UnixMilli(), s.cfg.Cap, s.cfg.TTL.Milliseconds(), s.cfg.UnreadTTL.Milliseconds()}
}

// Dropped reads the answer of an AddCmd: the IDs of messages that left the
// inbox unread because they were too old or over the cap.
func Dropped(c *redis.Cmd) []string {
	ids, _ := c.StringSlice()
	return ids
}

// Add stores m for user and returns the IDs it dropped, as Dropped does.
func (s *Store) Add(ctx context.Context, app int64, user string, m Message, now time.Time) ([]string, error) {
	body, err := Encode(m, now)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	dropped, err := add.Run(ctx, s.rdb, s.keys(app, user), s.addArgs(m.ID, body, now)...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("store message: %w", err)
	}
	return dropped, nil
}

// Contents is what a user's inbox holds.
type Contents struct {
	// Pending messages have not been pushed (acknowledged) yet.
	Pending []Message
	// Unread messages were pushed but not read.
	Unread []Message
}

// List returns the user's inbox, oldest first.
func (s *Store) List(ctx context.Context, app int64, user string, now time.Time) (Contents, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := list.Run(ctx, s.rdb, s.keys(app, user), now.Add(-s.cfg.TTL).UnixMilli(), now.Add(-s.cfg.UnreadTTL).UnixMilli()).Slice()
	if err != nil {
		return Contents{}, fmt.Errorf("list inbox: %w", err)
	}
	var c Contents
	for i, dst := range []*[]Message{&c.Pending, &c.Unread} {
		ids, _ := res[2*i].([]any)
		bodies, _ := res[2*i+1].([]any)
		*dst = make([]Message, 0, len(ids))
		for j := range ids {
			b, ok := bodies[j].(string)
			if !ok {
				continue
			}
			var m Message
			if err := json.Unmarshal([]byte(b), &m); err != nil {
				return Contents{}, fmt.Errorf("decode message %v: %w", ids[j], err)
			}
			*dst = append(*dst, m)
		}
	}
	return c, nil
}

// Delivered moves ids (all pending messages if ids is empty) from pending
// to unread and returns the IDs it moved; IDs not pending are ignored.
func (s *Store) Delivered(ctx context.Context, app int64, user string, ids []string, now time.Time) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	args := append(s.deliverArgs(now), strSlice(ids)...)
	moved, err := deliver.Run(ctx, s.rdb, s.keys(app, user), args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("acknowledge messages: %w", err)
	}
	return moved, nil
}

// Read applies read receipts: ids leave both sets. It returns the IDs that
// were in either.
func (s *Store) Read(ctx context.Context, app int64, user string, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	done, err := read.Run(ctx, s.rdb, s.keys(app, user), strSlice(ids)...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("mark messages read: %w", err)
	}
	return done, nil
}

func (s *Store) deliverArgs(now time.Time) []any {
	return []any{now.UnixMilli(), s.cfg.Cap, max(s.cfg.TTL, s.cfg.UnreadTTL).Milliseconds()}
}

func strSlice(ids []string) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// Ack is a client's acknowledgement of some of a user's messages: delivered
// (they reached the client) or read.
type Ack struct {
	App  int64
	User string
	IDs  []string
	Read bool
}

// Apply applies acks in one pipelined round trip and returns, per ack, the
// IDs whose state changed (so that each transition is counted once).
func (s *Store) Apply(ctx context.Context, acks []Ack, now time.Time) ([][]string, error) {
	if len(acks) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmds := make([]*redis.Cmd, len(acks))
	_, err := rscript.Pipelined(ctx, s.rdb, Scripts(), func(p redis.Pipeliner) {
		for i, a := range acks {
			if len(a.IDs) == 0 {
				continue
			}
			if a.Read {
				cmds[i] = read.EvalSha(ctx, p, s.keys(a.App, a.User), strSlice(a.IDs)...)
			} else {
				cmds[i] = deliver.EvalSha(ctx, p, s.keys(a.App, a.User), append(s.deliverArgs(now), strSlice(a.IDs)...)...)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("apply acknowledgements: %w", err)
	}
	out := make([][]string, len(acks))
	for i, c := range cmds {
		if c != nil {
			out[i], _ = c.StringSlice()
		}
	}
	return out, nil
}
