// Package inbox keeps, in Redis, the messages a user has not been pushed yet
// and those pushed but not read, and the announcements of each region.
//
// Per user (keys P{app:uN}:user:..., hash-tagged by the user's shard, see
// keyspace.User, so that every script touches one Redis Cluster slot and
// the messages of a chunk of users are stored with one script per shard,
// not one per user):
//
//   - P{app:uN}:user:np, "not yet pushed": a sorted set of message IDs by the
//     time they were stored. Every personal message goes here first, also
//     for a user who is online, and leaves only when the client acknowledges
//     it (over the socket or the API). A message sent to a gateway that dies
//     before the client's ack is therefore still here, and is replayed when
//     the user connects again. The set is capped (Config.Cap): storing a
//     message into a full set drops the oldest.
//   - P{app:uN}:user:unread: acknowledged (delivered) messages not yet read. A
//     read receipt removes a message from both sets. Capped the same way.
//   - P{app:uN}:user:msgs: the message bodies, by ID, while a message is in
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
	stem := keyspace.User(s.cfg.Prefix, app, user)
	return []string{stem + "np", stem + "unread", stem + "msgs"}
}

// The scripts take the keys np, unread, msgs of one user, or of several
// users of one shard (keyspace.UserShards) three by three. A body is
// deleted when its ID leaves both sets.
const trimFn = `
local function trim(set, other, msgs, cap, dropped)
  local n = redis.call('ZCARD', set)
  if n <= cap then return end
  local ids = redis.call('ZRANGE', set, 0, n - cap - 1)
  redis.call('ZREMRANGEBYRANK', set, 0, n - cap - 1)
  for _, id in ipairs(ids) do
    if not redis.call('ZSCORE', other, id) then redis.call('HDEL', msgs, id) end
    table.insert(dropped, id)
  end
end
local function expire(set, other, msgs, cutoff, dropped)
  local ids = redis.call('ZRANGE', set, '-inf', cutoff, 'BYSCORE')
  if #ids == 0 then return end
  redis.call('ZREMRANGEBYSCORE', set, '-inf', cutoff)
  for _, id in ipairs(ids) do
    if not redis.call('ZSCORE', other, id) then redis.call('HDEL', msgs, id) end
    table.insert(dropped, id)
  end
end
`

// add stores messages, one per user of one shard, each unless it is
// already in either set, and returns per user the IDs of the messages it
// dropped (too old, or over the cap). Bodies are passed once each and
// named by their index. ARGV now ms, cap, ttl ms, unread ttl ms, number of
// bodies B, bodies 1..B, then per user: id, body index.
var add = redis.NewScript(trimFn + `
local now, cap, ttl, uttl, nb = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local keep = math.max(ttl, uttl)
local base = 5 + nb
local out = {}
for i = 1, #KEYS / 3 do
  local np, un, msgs = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  local id = ARGV[base + 2*i - 1]
  local dropped = {}
  expire(np, un, msgs, now - ttl, dropped)
  expire(un, np, msgs, now - uttl, dropped)
  if not redis.call('ZSCORE', un, id) and redis.call('ZADD', np, 'NX', now, id) == 1 then
    redis.call('HSET', msgs, id, ARGV[5 + tonumber(ARGV[base + 2*i])])
    trim(np, un, msgs, cap, dropped)
    redis.call('PEXPIRE', np, keep)
    redis.call('PEXPIRE', un, keep)
    redis.call('PEXPIRE', msgs, keep)
  end
  out[i] = dropped
end
return out`)

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

// apply applies acks of users of one shard and returns per ack the IDs
// whose state it changed. An ack "d" moves IDs from np to unread (dated
// now; with no IDs, all of np), an ack "r" removes IDs from both sets.
// ARGV now ms, cap, keep ms, then per ack: kind, number of IDs N, IDs 1..N.
var apply = redis.NewScript(trimFn + `
local now, cap, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local a = 4
local out = {}
for i = 1, #KEYS / 3 do
  local np, un, msgs = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  local kind, n = ARGV[a], tonumber(ARGV[a+1])
  local ids = {}
  for j = 1, n do ids[j] = ARGV[a+1+j] end
  a = a + 2 + n
  local done = {}
  if kind == 'r' then
    for _, id in ipairs(ids) do
      if redis.call('ZREM', np, id) + redis.call('ZREM', un, id) > 0 then
        redis.call('HDEL', msgs, id)
        table.insert(done, id)
      end
    end
  else
    if n == 0 then ids = redis.call('ZRANGE', np, 0, -1) end
    for _, id in ipairs(ids) do
      if redis.call('ZREM', np, id) == 1 then
        redis.call('ZADD', un, now, id)
        table.insert(done, id)
      end
    end
    if #done > 0 then
      trim(un, np, msgs, cap, {})
      redis.call('PEXPIRE', un, keep, 'GT')
      redis.call('PEXPIRE', msgs, keep, 'GT')
    end
  end
  out[i] = done
end
return out`)

// Scripts are the scripts AddCmds queues, for rscript.Pipelined.
func Scripts() []*redis.Script { return []*redis.Script{add, list, apply} }

// Encode returns m as stored at now: the body AddCmds stores and gateways
// send to clients.
func Encode(m Message, now time.Time) (json.RawMessage, error) {
	m.StoredAt = now.UTC()
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode message: %w", err)
	}
	return body, nil
}

// Item is one message to store for one user: its ID and its body, encoded
// by Encode.
type Item struct {
	User string
	ID   string
	Body json.RawMessage
}

// Added is the answer to an AddCmds: the messages each item dropped.
type Added struct {
	cmds  []*redis.Cmd
	index [][]int // per command, the items it stored
	n     int
}

// AddCmds queues storing items, all for users of app, on p: one script
// per shard of the users, whatever their number.
func (s *Store) AddCmds(ctx context.Context, p redis.Pipeliner, app int64, items []Item, now time.Time) *Added {
	a := &Added{index: keyspace.ByUserShard(len(items), func(i int) (int64, string) { return app, items[i].User }), n: len(items)}
	for _, idx := range a.index {
		bodyAt := map[string]int{}
		keys := make([]string, 0, 3*len(idx))
		args := []any{now.UnixMilli(), s.cfg.Cap, s.cfg.TTL.Milliseconds(), s.cfg.UnreadTTL.Milliseconds(), 0}
		var refs []any
		for _, i := range idx {
			it := items[i]
			keys = append(keys, s.keys(app, it.User)...)
			b, ok := bodyAt[string(it.Body)]
			if !ok {
				b = len(bodyAt) + 1
				bodyAt[string(it.Body)] = b
				args = append(args, []byte(it.Body))
			}
			refs = append(refs, it.ID, b)
		}
		args[4] = len(bodyAt)
		a.cmds = append(a.cmds, add.EvalSha(ctx, p, keys, append(args, refs...)...))
	}
	return a
}

// Dropped returns, per item, the IDs of messages that left the inbox
// unread because they were too old or over the cap. Call it after the
// pipeline ran.
func (a *Added) Dropped() [][]string {
	out := make([][]string, a.n)
	for c, idx := range a.index {
		res, _ := a.cmds[c].Slice()
		for j, i := range idx {
			if j < len(res) {
				out[i] = stringsOf(res[j])
			}
		}
	}
	return out
}

func stringsOf(v any) []string {
	vs, _ := v.([]any)
	out := make([]string, 0, len(vs))
	for _, x := range vs {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// Add stores m for user and returns the IDs it dropped, as Dropped does.
func (s *Store) Add(ctx context.Context, app int64, user string, m Message, now time.Time) ([]string, error) {
	body, err := Encode(m, now)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var a *Added
	if _, err := rscript.Pipelined(ctx, s.rdb, Scripts(), func(p redis.Pipeliner) {
		a = s.AddCmds(ctx, p, app, []Item{{User: user, ID: m.ID, Body: body}}, now)
	}); err != nil {
		return nil, fmt.Errorf("store message: %w", err)
	}
	return a.Dropped()[0], nil
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
	changed, err := s.Apply(ctx, []Ack{{App: app, User: user, IDs: ids}}, now)
	if err != nil {
		return nil, err
	}
	return changed[0], nil
}

// Read applies read receipts: ids leave both sets. It returns the IDs that
// were in either.
func (s *Store) Read(ctx context.Context, app int64, user string, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	changed, err := s.Apply(ctx, []Ack{{App: app, User: user, IDs: ids, Read: true}}, time.Now())
	if err != nil {
		return nil, err
	}
	return changed[0], nil
}

// Ack is a client's acknowledgement of some of a user's messages: delivered
// (they reached the client) or read. A delivery ack without IDs
// acknowledges every pending message; a read receipt without IDs does
// nothing.
type Ack struct {
	App  int64
	User string
	IDs  []string
	Read bool
}

// Apply applies acks, one script per shard of their users in one
// pipelined round trip, and returns, per ack, the IDs whose state changed
// (so that each transition is counted once).
func (s *Store) Apply(ctx context.Context, acks []Ack, now time.Time) ([][]string, error) {
	if len(acks) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	byShard := keyspace.ByUserShard(len(acks), func(i int) (int64, string) { return acks[i].App, acks[i].User })
	cmds := make([]*redis.Cmd, len(byShard))
	_, err := rscript.Pipelined(ctx, s.rdb, Scripts(), func(p redis.Pipeliner) {
		for c, idx := range byShard {
			keys := make([]string, 0, 3*len(idx))
			args := []any{now.UnixMilli(), s.cfg.Cap, max(s.cfg.TTL, s.cfg.UnreadTTL).Milliseconds()}
			for _, i := range idx {
				a := acks[i]
				keys = append(keys, s.keys(a.App, a.User)...)
				kind, ids := "d", a.IDs
				if a.Read {
					kind = "r"
				}
				args = append(args, kind, len(ids))
				for _, id := range ids {
					args = append(args, id)
				}
			}
			cmds[c] = apply.EvalSha(ctx, p, keys, args...)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("apply acknowledgements: %w", err)
	}
	out := make([][]string, len(acks))
	for c, idx := range byShard {
		res, _ := cmds[c].Slice()
		for j, i := range idx {
			if j < len(res) {
				out[i] = stringsOf(res[j])
			}
		}
	}
	return out, nil
}
