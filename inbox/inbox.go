// Package inbox keeps, in Redis, the messages a user has not been pushed yet
// and those pushed but not read, and the announcements of each region.
//
// Per shard of an app's users (keyspace.UserShards; keys P{app:uN}#...,
// hash-tagged by the shard, see keyspace.Shard, so that every script
// touches one Redis Cluster slot and the messages of a chunk of users are
// stored with one script per shard, not one per user, and a few commands
// per shard, not per user):
//
//   - P{app:uN}#inbox: a hash with one field per user, the user's entries:
//     each message pending ("not yet pushed", since it was stored) or
//     unread (since it was acknowledged). Every personal message is pending
//     first, also for a user who is online, and leaves that state only
//     when the client acknowledges it (over the socket or the API). A
//     message sent to a gateway that dies before the client's ack is
//     therefore still pending, and is replayed when the user connects
//     again. A read receipt removes the message. Each state is capped
//     (Config.Cap): storing a message into a full one drops the oldest.
//   - P{app:uN}#inbox-at: when each user's field was last written (dated
//     ahead by a sixteenth of the keep, keyspace.ShardLua), so that the
//     fields of users who do not come back are dropped.
//   - P{app:uN}#m:<id>: a message's body, once per shard, not per user,
//     kept TTL + UnreadTTL after it was first stored (as long as it can
//     stay pending, then unread).
//
// A pending message is kept TTL after it was stored, an unread one
// UnreadTTL after it was acknowledged; older ones are no longer returned and
// are dropped at the next write. A user's field is dropped between the longer
// of the two and 17/16 of it after its last write (by the next write to the
// shard), and the keys
// of a shard nobody writes expire then, so a user who does not come back
// finds an empty inbox and costs nothing. Messages have deterministic IDs,
// so a worker that stores the same chunk twice (after a crash) stores each
// message once, and a message already acknowledged is not stored again.
package inbox

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
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

// keys are the hash of the inboxes of the user's shard and its index of
// last writes.
func (s *Store) keys(app int64, user string) []string {
	stem := keyspace.Shard(s.cfg.Prefix, app, user)
	return []string{stem + "inbox", stem + "inbox-at"}
}

// bodyKey holds one message's body for the users of one shard.
func (s *Store) bodyKey(app int64, user, id string) string {
	return keyspace.Shard(s.cfg.Prefix, app, user) + "m:" + id
}

// The scripts take the keys of one shard: the inboxes hash, its index,
// then (add only) the bodies' keys. A user's field is their entries, one
// a line: "p <ms> <id>" pending since ms, "u <ms> <id>" unread since ms
// (acknowledged then). prelude loads the fields of the users named in
// ARGV (at the positions given), and finish writes back those changed,
// deletes the emptied ones, dates them in the index, drops the users whose
// last write is older than keep (they expired) and extends the keys' life.
const prelude = keyspace.ShardLua + `
local function decode(v)
  local es = {}
  if v then
    for k, ms, id in string.gmatch(v, '(%a) (%d+) ([^\n]+)') do
      es[#es + 1] = {k, tonumber(ms), id, ms}
    end
  end
  return es
end
local function encode(es)
  local lines = {}
  for i, e in ipairs(es) do lines[i] = e[1] .. ' ' .. e[4] .. ' ' .. e[3] end
  return table.concat(lines, '\n')
end
local function find(es, id)
  for i, e in ipairs(es) do if e[3] == id then return i end end
end
local function expire(es, now, ttl, uttl, dropped)
  local i = 1
  while i <= #es do
    local e = es[i]
    if (e[1] == 'p' and e[2] <= now - ttl) or (e[1] == 'u' and e[2] <= now - uttl) then
      table.remove(es, i)
      table.insert(dropped, e[3])
    else
      i = i + 1
    end
  end
end
local function trim(es, kind, cap, dropped)
  local n = 0
  for _, e in ipairs(es) do if e[1] == kind then n = n + 1 end end
  while n > cap do
    local oldest
    for i, e in ipairs(es) do
      if e[1] == kind and (not oldest or e[2] < es[oldest][2]) then oldest = i end
    end
    table.insert(dropped, es[oldest][3])
    table.remove(es, oldest)
    n = n - 1
  end
end
local state, order, dirty = {}, {}, {}
local function load(users)
  local names = {}
  for _, u in ipairs(users) do
    if not state[u] then state[u] = false; names[#names + 1] = u end
  end
  for i = 1, #names, 1000 do
    local part = {unpack(names, i, math.min(i + 999, #names))}
    local vs = redis.call('HMGET', KEYS[1], unpack(part))
    for j, u in ipairs(part) do
      state[u] = decode(vs[j])
      order[#order + 1] = u
    end
  end
end
local function finish(now, keep)
  local set, del, at = {}, {}, {}
  for _, u in ipairs(order) do
    if dirty[u] then
      if #state[u] == 0 then del[#del + 1] = u else set[#set + 1] = u; set[#set + 1] = encode(state[u]) end
      at[#at + 1] = now; at[#at + 1] = u
    end
  end
  if #at == 0 then return end
  write_shard(KEYS[1], KEYS[2], set, del, at, now, keep)
end
`

// add stores messages for users of one shard, each unless the user has it
// already (pending or unread), and returns per item the IDs of the
// messages it dropped (too old, or over the cap). Bodies are passed once
// each, stored once per shard (kept body keep ms from their first store,
// so as long as a message can stay pending and then unread) and named by
// their index. KEYS inboxes, index, body keys 1..B; ARGV now ms, cap, ttl
// ms, unread ttl ms, body keep ms, B, bodies 1..B, then per item: user, id,
// body index.
var add = redis.NewScript(prelude + `
local now, cap, ttl, uttl, bkeep, nb = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local base = 6 + nb
local n = (#ARGV - base) / 3
local users = {}
for i = 1, n do users[i] = ARGV[base + 3*i - 2] end
load(users)
local out, used = {}, {}
for i = 1, n do
  local u, id, b = users[i], ARGV[base + 3*i - 1], tonumber(ARGV[base + 3*i])
  local es, dropped = state[u], {}
  expire(es, now, ttl, uttl, dropped)
  if not find(es, id) then
    es[#es + 1] = {'p', now, id, ARGV[1]}
    trim(es, 'p', cap, dropped)
    used[b] = true
    dirty[u] = true
  end
  if #dropped > 0 then dirty[u] = true end
  out[i] = dropped
end
for b = 1, nb do
  if used[b] and not redis.call('SET', KEYS[2 + b], ARGV[6 + b], 'NX', 'PX', bkeep) then
    redis.call('PEXPIRE', KEYS[2 + b], bkeep, 'GT')
  end
end
finish(now, math.max(ttl, uttl))
return out`)

// apply applies acks of users of one shard and returns per ack the IDs
// whose state it changed. An ack "d" makes pending IDs unread (dated now;
// with no IDs, all pending ones), an ack "r" removes IDs, pending or
// unread. ARGV now ms, cap, keep ms, then per ack: user, kind, number of
// IDs N, IDs 1..N.
var apply = redis.NewScript(prelude + `
local now, cap, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local acks, users = {}, {}
local a = 4
while a <= #ARGV do
  local n = tonumber(ARGV[a + 2])
  acks[#acks + 1] = {ARGV[a], ARGV[a + 1], a + 3, n}
  users[#users + 1] = ARGV[a]
  a = a + 3 + n
end
load(users)
local out = {}
for i, ack in ipairs(acks) do
  local u, kind, from, n = ack[1], ack[2], ack[3], ack[4]
  local es, done = state[u], {}
  if kind == 'r' then
    for j = from, from + n - 1 do
      local at = find(es, ARGV[j])
      if at then table.remove(es, at); table.insert(done, ARGV[j]) end
    end
  else
    local ids = {}
    if n == 0 then
      for _, e in ipairs(es) do if e[1] == 'p' then ids[#ids + 1] = e[3] end end
    else
      for j = from, from + n - 1 do ids[#ids + 1] = ARGV[j] end
    end
    for _, id in ipairs(ids) do
      local at = find(es, id)
      if at and es[at][1] == 'p' then
        local e = table.remove(es, at)
        es[#es + 1] = {'u', now, id, ARGV[1]}
        table.insert(done, id)
      end
    end
    if #done > 0 then trim(es, 'u', cap, {}) end
  end
  if #done > 0 then dirty[u] = true end
  out[i] = done
end
finish(now, keep)
return out`)

// Scripts are the scripts AddCmds queues, for rscript.Pipelined.
func Scripts() []*redis.Script { return []*redis.Script{add, apply} }

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
		first := items[idx[0]].User
		bodyAt := map[string]int{}
		keys := s.keys(app, first)
		args := []any{now.UnixMilli(), s.cfg.Cap, s.cfg.TTL.Milliseconds(), s.cfg.UnreadTTL.Milliseconds(),
			(s.cfg.TTL + s.cfg.UnreadTTL).Milliseconds(), 0}
		refs := make([]any, 0, 3*len(idx))
		for _, i := range idx {
			it := items[i]
			b, ok := bodyAt[it.ID]
			if !ok {
				b = len(bodyAt) + 1
				bodyAt[it.ID] = b
				keys = append(keys, s.bodyKey(app, first, it.ID))
				args = append(args, []byte(it.Body))
			}
			refs = append(refs, it.User, it.ID, b)
		}
		args[5] = len(bodyAt)
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
	v, err := s.rdb.HGet(ctx, s.keys(app, user)[0], user).Result()
	if err != nil && err != redis.Nil {
		return Contents{}, fmt.Errorf("list inbox: %w", err)
	}
	type entry struct {
		id string
		ms int64
	}
	var pending, unread []entry
	for _, line := range strings.Split(v, "\n") {
		k, rest, _ := strings.Cut(line, " ")
		ms, id, _ := strings.Cut(rest, " ")
		at, err := strconv.ParseInt(ms, 10, 64)
		if err != nil || id == "" {
			continue
		}
		switch {
		case k == "p" && at > now.Add(-s.cfg.TTL).UnixMilli():
			pending = append(pending, entry{id, at})
		case k == "u" && at > now.Add(-s.cfg.UnreadTTL).UnixMilli():
			unread = append(unread, entry{id, at})
		}
	}
	c := Contents{Pending: []Message{}, Unread: []Message{}}
	byTime := func(a, b entry) int { return cmp.Compare(a.ms, b.ms) }
	slices.SortStableFunc(pending, byTime)
	slices.SortStableFunc(unread, byTime)
	all := slices.Concat(pending, unread)
	if len(all) == 0 {
		return c, nil
	}
	keys := make([]string, len(all))
	for i, e := range all {
		keys[i] = s.bodyKey(app, user, e.id)
	}
	bodies, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return Contents{}, fmt.Errorf("list inbox: %w", err)
	}
	for i, e := range all {
		dst := &c.Pending
		if i >= len(pending) {
			dst = &c.Unread
		}
		b, ok := bodies[i].(string)
		if !ok {
			continue
		}
		var m Message
		if err := json.Unmarshal([]byte(b), &m); err != nil {
			return Contents{}, fmt.Errorf("decode message %s: %w", e.id, err)
		}
		*dst = append(*dst, m)
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
			keys := s.keys(acks[idx[0]].App, acks[idx[0]].User)
			args := []any{now.UnixMilli(), s.cfg.Cap, max(s.cfg.TTL, s.cfg.UnreadTTL).Milliseconds()}
			for _, i := range idx {
				a := acks[i]
				kind, ids := "d", a.IDs
				if a.Read {
					kind = "r"
				}
				args = append(args, a.User, kind, len(ids))
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
