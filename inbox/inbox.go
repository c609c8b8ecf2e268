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
// (acknowledged then), in the order they were written, so that the first
// line of a state is its oldest (the writers' clocks run forward).
//
// The scripts work on each field as a string, with plain finds and
// splices that run in C, rather than decoding every line into Lua tables
// and encoding them back: a user holds up to twice Cap lines, and decoding
// them all for each message stored or acknowledged cost more than the rest
// of the delivery. A field is held as "\n" .. field .. "\n", so that every
// line is "\n" .. line and is followed by a "\n", the last one too. An ID
// is found as " <id>\n" preceded, from the line's start, by "\n<state>
// <ms>", so that an ID that ends another (o1 and xo1, or an ID with a
// space) is not taken for it. IDs that are empty or hold a line break are
// never stored and match nothing.
//
// prelude loads the fields of the users named in ARGV (at the positions
// given), and finish writes back those changed, deletes the emptied ones,
// dates them in the index, drops the users whose last write is older than
// keep (they expired) and extends the keys' life.
const prelude = keyspace.ShardLua + `
local state, order, dirty, counts = {}, {}, {}, {}
local function valid(id) return id ~= '' and not string.find(id, '\n', 1, true) end
-- find returns where the line of id starts (its leading line break) and
-- ends (the line break after it), its state and its ms, or nil.
local function find(w, id)
  if not valid(id) then return nil end
  local pat, init = ' ' .. id .. '\n', 1
  while true do
    local q = string.find(w, pat, init, true)
    if not q then return nil end
    local k, ms = string.match(string.sub(w, math.max(1, q - 24), q - 1), '\n(%a) (%d+)$')
    if k then return q - #ms - 3, q + #pat - 1, k, ms end
    init = q + 1
  end
end
-- first returns the first line of state k at or after init: where it
-- starts and ends, as find, its ms and its ID.
local function first(w, k, init)
  local s = string.find(w, '\n' .. k .. ' ', init, true)
  if not s then return nil end
  local ms, id = string.match(w, '^(%d+) ([^\n]*)', s + 3)
  if not ms then return nil end
  return s, s + 4 + #ms + #id, tonumber(ms), id
end
-- count returns how many lines of state k the user has, counted once a
-- script and kept up to date by remove and append.
local function count(u, k)
  local c = counts[u]
  if not c then c = {}; counts[u] = c end
  if not c[k] then
    local n, at, pat, w = 0, 1, '\n' .. k .. ' ', state[u]
    while true do
      local s = string.find(w, pat, at, true)
      if not s then break end
      n, at = n + 1, s + 3
    end
    c[k] = n
  end
  return c[k]
end
local function bump(u, k, d)
  local c = counts[u]
  if c and c[k] then c[k] = c[k] + d end
  dirty[u] = true
end
local function remove(u, s, e, k)
  local w = state[u]
  state[u] = string.sub(w, 1, s - 1) .. string.sub(w, e)
  bump(u, k, -1)
end
local function append(u, k, ms, id)
  state[u] = state[u] .. k .. ' ' .. ms .. ' ' .. id .. '\n'
  bump(u, k, 1)
end
-- expire drops the user's lines of state k dated before now - ttl, from
-- the front (the oldest first), and adds their IDs to dropped.
local function expire(u, k, now, ttl, dropped)
  while true do
    local s, e, ms, id = first(state[u], k, 1)
    if not s or ms > now - ttl then return end
    remove(u, s, e, k)
    dropped[#dropped + 1] = id
  end
end
-- trim drops the user's oldest lines of state k while there are more than
-- cap, and adds their IDs to dropped.
local function trim(u, k, cap, dropped)
  while count(u, k) > cap do
    local s, e, _, id = first(state[u], k, 1)
    remove(u, s, e, k)
    dropped[#dropped + 1] = id
  end
end
local function load(users)
  local names = {}
  for _, u in ipairs(users) do
    if not state[u] then state[u] = false; names[#names + 1] = u end
  end
  for i = 1, #names, 1000 do
    local part = {unpack(names, i, math.min(i + 999, #names))}
    local vs = redis.call('HMGET', KEYS[1], unpack(part))
    for j, u in ipairs(part) do
      local v = vs[j]
      state[u] = (v and v ~= '') and '\n' .. v .. '\n' or '\n'
      order[#order + 1] = u
    end
  end
end
local function finish(now, keep)
  local set, del, at = {}, {}, {}
  for _, u in ipairs(order) do
    if dirty[u] then
      local w = state[u]
      if w == '\n' then del[#del + 1] = u else set[#set + 1] = u; set[#set + 1] = string.sub(w, 2, -2) end
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
  local dropped = {}
  expire(u, 'p', now, ttl, dropped)
  expire(u, 'u', now, uttl, dropped)
  if valid(id) and not find(state[u], id) then
    append(u, 'p', ARGV[1], id)
    trim(u, 'p', cap, dropped)
    used[b] = true
  end
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
  local done = {}
  if kind == 'r' then
    for j = from, from + n - 1 do
      local s, e, k = find(state[u], ARGV[j])
      if s then remove(u, s, e, k); done[#done + 1] = ARGV[j] end
    end
  elseif n == 0 then
    -- Every pending line leaves its place, in one splice, and is
    -- appended unread.
    local w, pieces, last, at, unread = state[u], {}, 1, 1, count(u, 'u')
    while true do
      local s, e, _, id = first(w, 'p', at)
      if not s then break end
      pieces[#pieces + 1] = string.sub(w, last, s - 1)
      done[#done + 1] = id
      last, at = e, e
    end
    if #done > 0 then
      pieces[#pieces + 1] = string.sub(w, last)
      for _, id in ipairs(done) do pieces[#pieces + 1] = 'u ' .. ARGV[1] .. ' ' .. id .. '\n' end
      state[u] = table.concat(pieces)
      counts[u].p, counts[u].u, dirty[u] = 0, unread + #done, true
    end
  else
    for j = from, from + n - 1 do
      local s, e, k = find(state[u], ARGV[j])
      if s and k == 'p' then
        remove(u, s, e, 'p')
        append(u, 'u', ARGV[1], ARGV[j])
        done[#done + 1] = ARGV[j]
      end
    end
  end
  if #done > 0 and kind ~= 'r' then trim(u, 'u', cap, {}) end
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
