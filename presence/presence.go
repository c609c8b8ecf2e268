// Package presence keeps, in Redis, which gateway instance holds each user's
// WebSocket connections, so that workers can route a message to the
// instance that can deliver it.
//
// The users of one shard (keyspace.UserShards) share one hash,
// P{app:uN}#conns, with one field per online user holding their entries
// "instance|conn" (one per open connection, so a user may be online on
// several devices and gateways), each with the instant, in Redis's own
// clock, at which it stops counting. A gateway registers a connection when
// it opens, refreshes all its live connections every heartbeat interval
// (one script per shard of their users, or per thousand connections of a
// shard, pipelined), and removes a
// connection when it closes. Removal drops the connection's own entry, so a
// closing connection can never remove the route of a newer connection of
// the same user. A worker reads a chunk's users with one HMGET per shard
// and Redis's TIME, in one round trip, and no script.
//
// The bound: a connection counts as online until TTL after its gateway last
// refreshed it. A gateway refreshes only connections that answered its last
// WebSocket ping, so a client that vanishes is closed (and removed) within
// one heartbeat interval plus the ping timeout, and the connections of a
// gateway that dies stop counting within TTL. Lookups compare instants with
// Redis's TIME, so gateway and worker clocks do not matter.
//
// The key is hash-tagged by the shard, {app:uN} (keyspace.Shard), so that
// each command or script touches one Redis Cluster slot.
package presence

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chime-dev/chime/internal/rscript"
	"github.com/chime-dev/chime/keyspace"
)

// DefaultTTL is how long a connection counts as online after its last
// refresh: three heartbeats of 10s.
const DefaultTTL = 30 * time.Second

// Config configures a registry.
type Config struct {
	// Prefix starts every key. Defaults to keyspace.DefaultPrefix.
	Prefix string
	// TTL is how long a connection counts as online after its last refresh.
	// Defaults to DefaultTTL (30s, three heartbeats of 10s).
	TTL time.Duration
}

// Conn names one connection of one user on one gateway instance.
type Conn struct {
	App      int64
	User     string
	Instance string
	ID       string
}

func (c Conn) member() string { return c.Instance + "|" + c.ID }

// Registry reads and writes presence.
type Registry struct {
	cfg Config
	rdb redis.UniversalClient
}

// New returns a registry.
func New(cfg Config, rdb redis.UniversalClient) *Registry {
	cfg.Prefix = cmp.Or(cfg.Prefix, keyspace.DefaultPrefix)
	cfg.TTL = cmp.Or(cfg.TTL, DefaultTTL)
	return &Registry{cfg: cfg, rdb: rdb}
}

// TTL returns how long a connection counts as online after a refresh.
func (r *Registry) TTL() time.Duration { return r.cfg.TTL }

// Key is the hash holding the presence of a user's shard, one field per
// user (keyspace.Shard).
func Key(prefix string, app int64, user string) string {
	return keyspace.Shard(prefix, app, user) + "conns"
}

func (r *Registry) keys(app int64, user string) []string {
	k := Key(r.cfg.Prefix, app, user)
	return []string{k, k + "-at"}
}

// A user's field is their connections, one a line: "instance|conn|ms", ms
// the instant, on Redis's clock, at which the entry stops counting. The
// index (a sorted set, kept a skiplist by keyspace.ShardLua's SKIPLIST
// member) dates each user at or after their latest such instant, so that
// the fields of users whose connections all lapsed (their gateway died)
// are dropped by a later write to the shard.
//
// The scripts work on each field as a string, with plain finds and
// splices that run in C, rather than decoding every entry into Lua tables
// and encoding them back: a gateway refreshes every connection it holds
// every heartbeat, and the decoding was most of the refresh's Redis time.
// A field holding one line, the connection's own (a user on one device),
// is recognised and replaced whole.
//
// The index is written only when an entry's instant enters a new span of
// TTL (spans counted from the epoch), and then dates the user at the end
// of that span: at or after every instant the entry can be given until it
// leaves the span (an entry refreshed within a span was dated when it
// entered it; dates only go up, ZADD GT). Updating a member of a sorted
// set costs several times reading its score, and reading the scores
// (ZMSCORE) cost about a fifth of a refresh; this way the index is never
// read, and with the TTL three heartbeats a connection is dated on one
// refresh in three. The
// entries that lapsed (another connection of the user whose gateway died)
// are dropped from the field when the user is dated; until then lookups
// skip them, by their instant. A user whose connections all lapsed is
// thus dropped between their lapse and one TTL later, by the first write
// to the shard after that; it stops counting as online at its lapse.
const codec = keyspace.ShardLua + `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- cut returns the field v (false for none) without the line of member m,
-- and the instant that line lapsed (nil: there was none).
local function cut(v, m)
  if not v then return false, nil end
  local pat = m .. '|'
  if string.find(v, pat, 1, true) == 1 and not string.find(v, '\n', 1, true) then
    local ms = string.sub(v, #pat + 1)
    if string.find(ms, '^%d+$') then return false, tonumber(ms) end
  end
  -- Every line, the first and the last too, is "\n" .. line .. "\n" in w.
  local w, init = '\n' .. v .. '\n', 1
  pat = '\n' .. pat
  while true do
    local q = string.find(w, pat, init, true)
    if not q then return v, nil end
    local e = string.find(w, '\n', q + 1, true)
    local ms = string.sub(w, q + #pat, e - 1)
    if string.find(ms, '^%d+$') then
      w = string.sub(w, 1, q) .. string.sub(w, e + 1)
      if w == '\n' then return false, tonumber(ms) end
      return string.sub(w, 2, -2), tonumber(ms)
    end
    init = q + 1
  end
end
-- prune returns the field v, which holds a line just written, without the
-- lines that lapsed. A field of one line is that line.
local function prune(v)
  if not string.find(v, '\n', 1, true) then return v end
  local kept, dropped = {}, false
  for line in string.gmatch(v, '[^\n]+') do
    local ms = tonumber(string.match(line, '|(%d+)$'))
    if ms and ms > now then kept[#kept + 1] = line else dropped = true end
  end
  if not dropped then return v end
  return table.concat(kept, '\n')
end
-- load reads the fields of users (at most 1,000; false for none), and
-- returns them and the distinct users in order.
local function load(users)
  local w, names = {}, {}
  for _, u in ipairs(users) do
    if w[u] == nil then w[u] = false; names[#names + 1] = u end
  end
  local vs = redis.call('HMGET', KEYS[1], unpack(names))
  for j, u in ipairs(names) do w[u] = vs[j] end
  return w, names
end
-- save writes the fields of the users in dirty (in the order of names),
-- deleting the empty ones and their dates, and drops the users the index
-- dates before now.
local function save(w, names, dirty)
  local set, del = {}, {}
  for _, u in ipairs(names) do
    if dirty[u] then
      if w[u] then set[#set + 1] = u; set[#set + 1] = w[u] else del[#del + 1] = u end
    end
  end
  -- ' table' keeps the hash a hash table (keyspace.ShardLua).
  if #set > 0 then redis.call('HSET', KEYS[1], ' table', TABLE, unpack(set)) end
  if #del > 0 then
    redis.call('HDEL', KEYS[1], unpack(del))
    redis.call('ZREM', KEYS[2], unpack(del))
  end
  local gone = redis.call('ZRANGE', KEYS[2], '-inf', now, 'BYSCORE', 'LIMIT', 0, 1000)
  if #gone > 0 then
    redis.call('HDEL', KEYS[1], unpack(gone))
    redis.call('ZREM', KEYS[2], unpack(gone))
  end
end
`

// touch sets the entries of connections of users of one shard (at most
// maxPerScript) to count until ttl from now. With only-if-present, an
// entry no longer there (it was removed or lapsed) is not added back. It
// returns per connection 1 if touched, 0 if not. KEYS hash, index; ARGV
// ttl ms, only-if-present, then per connection: user, member.
var touch = redis.NewScript(codec + `
local ttl, only = tonumber(ARGV[1]), ARGV[2] == '1'
local lapse = now + ttl
local stamp, span = string.format('%d', lapse), math.floor(lapse / ttl)
-- The date as a string: Redis formats a Lua number it is given with %.17g,
-- which cost a tenth of a refresh.
local date = string.format('%d', (span + 1) * ttl)
local n = (#ARGV - 2) / 2
local users = {}
for i = 1, n do users[i] = ARGV[1 + 2*i] end
local w, names = load(users)
local out, dirty, dates, dated = {}, {}, {}, {}
for i = 1, n do
  local u, m = users[i], ARGV[2 + 2*i]
  local rest, ms = cut(w[u], m)
  if ms and ms <= now then ms = nil end
  if only and not ms then
    out[i] = 0
    if rest ~= w[u] then w[u] = rest; dirty[u] = true end
  else
    local line = m .. '|' .. stamp
    w[u] = rest and (rest .. '\n' .. line) or line
    out[i] = 1
    dirty[u] = true
    if not dated[u] and (not ms or math.floor(ms / ttl) < span) then
      dated[u] = true
      dates[#dates + 1] = date; dates[#dates + 1] = u
    end
  end
end
for i = 2, #dates, 2 do local u = dates[i]; w[u] = prune(w[u]) end
-- SKIPLIST keeps the index a skiplist (keyspace.ShardLua).
if #dates > 0 then redis.call('ZADD', KEYS[2], 'GT', 'inf', SKIPLIST, unpack(dates)) end
save(w, names, dirty)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return out`)

// maxPerScript is the most connections one touch script takes; a shard
// with more is touched by several, in the same pipeline.
const maxPerScript = 1000

// remove drops one connection of one user. KEYS hash, index; ARGV user,
// member.
var remove = redis.NewScript(codec + `
local w, names = load({ARGV[1]})
local u, dirty = ARGV[1], {}
while true do
  local rest, ms = cut(w[u], ARGV[2])
  if not ms then break end
  w[u] = rest
  dirty[u] = true
end
save(w, names, dirty)
return 1`)

var scripts = []*redis.Script{touch, remove}

// Register records conns as online in one pipelined round trip.
func (r *Registry) Register(ctx context.Context, conns ...Conn) error {
	if _, err := r.touch(ctx, conns, false); err != nil {
		return fmt.Errorf("register presence: %w", err)
	}
	return nil
}

// Refresh extends the lives of conns in one pipelined round trip and returns
// those that were no longer registered (removed or expired), which the caller
// registers again if they are still open.
func (r *Registry) Refresh(ctx context.Context, conns []Conn) ([]Conn, error) {
	missing, err := r.touch(ctx, conns, true)
	if err != nil {
		return nil, fmt.Errorf("refresh presence: %w", err)
	}
	return missing, nil
}

// touch runs the touch script over conns, one call per shard of their
// users, in one pipeline, and returns those it did not touch (only with
// onlyIfPresent: they were gone).
func (r *Registry) touch(ctx context.Context, conns []Conn, onlyIfPresent bool) ([]Conn, error) {
	if len(conns) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	flag := "0"
	if onlyIfPresent {
		flag = "1"
	}
	var byShard [][]int
	for _, idx := range keyspace.ByUserShard(len(conns), func(i int) (int64, string) { return conns[i].App, conns[i].User }) {
		byShard = append(byShard, slices.Collect(slices.Chunk(idx, maxPerScript))...)
	}
	cmds := make([]*redis.Cmd, len(byShard))
	_, err := rscript.Pipelined(ctx, r.rdb, scripts, func(p redis.Pipeliner) {
		for c, idx := range byShard {
			keys := r.keys(conns[idx[0]].App, conns[idx[0]].User)
			args := make([]any, 0, 2+2*len(idx))
			args = append(args, r.cfg.TTL.Milliseconds(), flag)
			for _, i := range idx {
				args = append(args, conns[i].User, conns[i].member())
			}
			cmds[c] = touch.EvalSha(ctx, p, keys, args...)
		}
	})
	if err != nil {
		return nil, err
	}
	var missing []Conn
	for c, idx := range byShard {
		res, _ := cmds[c].Int64Slice()
		for j, i := range idx {
			if j >= len(res) || res[j] == 0 {
				missing = append(missing, conns[i])
			}
		}
	}
	return missing, nil
}

// Remove records that c closed. Other connections of the user stay.
func (r *Registry) Remove(ctx context.Context, c Conn) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := rscript.Pipelined(ctx, r.rdb, scripts, func(p redis.Pipeliner) {
		remove.EvalSha(ctx, p, r.keys(c.App, c.User), c.User, c.member())
	}); err != nil {
		return fmt.Errorf("remove presence: %w", err)
	}
	return nil
}

// Lookup returns, per user of users who is online, the gateway instances
// that hold their connections, in one pipelined round trip.
func (r *Registry) Lookup(ctx context.Context, app int64, users []string) (map[string][]string, error) {
	if len(users) == 0 {
		return map[string][]string{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var l *Lookups
	_, err := rscript.Pipelined(ctx, r.rdb, scripts, func(p redis.Pipeliner) {
		l = r.LookupCmds(ctx, p, app, users)
	})
	if err != nil {
		return nil, fmt.Errorf("look up presence: %w", err)
	}
	out := make(map[string][]string)
	for i, inst := range l.Instances() {
		if len(inst) > 0 {
			out[users[i]] = inst
		}
	}
	return out, nil
}

// Scripts are the scripts of the registry, for rscript.Pipelined. Lookups
// run none.
func Scripts() []*redis.Script { return scripts }

// Lookups is the answer to a LookupCmds.
type Lookups struct {
	now   *redis.TimeCmd
	cmds  []*redis.SliceCmd
	index [][]int
	n     int
}

// LookupCmds queues the lookup of users of app on p: Redis's clock, then
// one HMGET per shard of the users, whatever their number.
func (r *Registry) LookupCmds(ctx context.Context, p redis.Pipeliner, app int64, users []string) *Lookups {
	l := &Lookups{index: keyspace.ByUserShard(len(users), func(i int) (int64, string) { return app, users[i] }), n: len(users)}
	l.now = p.Time(ctx)
	for _, idx := range l.index {
		fields := make([]string, len(idx))
		for j, i := range idx {
			fields[j] = users[i]
		}
		l.cmds = append(l.cmds, p.HMGet(ctx, Key(r.cfg.Prefix, app, users[idx[0]]), fields...))
	}
	return l
}

// Instances returns, per user looked up, the distinct instances holding
// the user's live connections (none: offline). Call it after the pipeline
// ran.
func (l *Lookups) Instances() [][]string {
	out := make([][]string, l.n)
	now := l.now.Val().UnixMilli()
	for c, idx := range l.index {
		res := l.cmds[c].Val()
		for j, i := range idx {
			if j >= len(res) {
				continue
			}
			v, _ := res[j].(string)
			for _, line := range strings.Split(v, "\n") {
				m, ms, ok := cutLast(line, "|")
				until, err := strconv.ParseInt(ms, 10, 64)
				if !ok || err != nil || until <= now {
					continue
				}
				if inst, _, _ := strings.Cut(m, "|"); !slices.Contains(out[i], inst) {
					out[i] = append(out[i], inst)
				}
			}
		}
	}
	return out
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
