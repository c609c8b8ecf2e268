// Package status records what happened to each (message, channel, user):
// pending, sent, delivered (the client acknowledged it), read, failed or
// expired.
//
// Two records at two costs:
//
//   - Aggregates in MySQL (table message_stats): per occurrence, channel and
//     state, how many entries reached that state. One upsert per call to
//     Record, which callers make per chunk (workers) or per batch of acks
//     (gateways), never per user. At most 3 channels × 6 states = 18 rows
//     per occurrence.
//   - Per-user detail in Redis: P{app:uN}#st, a hash with one field per
//     user of the shard (keyspace.Shard) holding the user's entries
//     ("message|channel", its state, time and the states it reached), and
//     P{app:uN}#st-at, when each user was last updated (dated ahead by a
//     sixteenth of Retention, keyspace.ShardLua), so that a chunk's or a
//     batch's entries are one script and a few commands per shard, not per
//     user. Capped at Config.PerUser entries per user (the least recently
//     updated drop out) and dropped between Config.Retention and 17/16 of
//     it after the user's last update (by the next update to the shard; the
//     keys of a shard nobody updates expire then). At the defaults (200 entries, 7 days) a user costs at
//     most about 200 × 40 bytes ≈ 8 KB of Redis, and only users who got a
//     message within the retention cost anything.
//
// A state never goes back in the detail: a "sent" recorded after the client
// already acknowledged (the ack raced the worker's record) leaves
// "delivered". Aggregates count each (message, channel, user) once per
// state it reaches, however often it is recorded: a chunk a worker sends
// again, or an ack a client repeats, counts nothing more.
package status

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/chime-dev/chime/internal/rscript"
	"github.com/chime-dev/chime/keyspace"
	"github.com/chime-dev/chime/store"
)

// States, in the order an entry moves through them.
const (
	Pending   = "pending"
	Sent      = "sent"
	Delivered = "delivered"
	Read      = "read"
	Failed    = "failed"
	Expired   = "expired"
)

// Channels.
const (
	// Gateway is the app's own WebSocket connection.
	Gateway = "gateway"
	// Push is the fallback sender for offline users (APNs, FCM, webhook, log).
	Push = "push"
	// Inbox is the pull inbox, read through the API.
	Inbox = "inbox"
)

var rank = map[string]int{Pending: 0, Sent: 1, Failed: 2, Expired: 2, Delivered: 3, Read: 4}

// Entry is one state change of one (message, channel, user).
type Entry struct {
	App        int64
	User       string
	Message    string
	Occurrence int64
	Channel    string
	State      string
}

// Defaults of the Config.
const (
	DefaultRetention = 7 * 24 * time.Hour
	DefaultPerUser   = 200
)

// Config configures a recorder.
type Config struct {
	// Prefix starts every key. Defaults to keyspace.DefaultPrefix.
	Prefix string
	// Retention is how long a user's detail is kept after its last update.
	// Defaults to DefaultRetention (168h, 7 days).
	Retention time.Duration
	// PerUser is the most entries kept per user. Defaults to
	// DefaultPerUser (200).
	PerUser int
}

// Recorder records states.
type Recorder struct {
	cfg Config
	rdb redis.UniversalClient
	db  *gorm.DB
}

// New returns a recorder. db may be nil, in which case aggregates are not
// kept.
func New(cfg Config, rdb redis.UniversalClient, db *gorm.DB) *Recorder {
	cfg.Prefix = cmp.Or(cfg.Prefix, keyspace.DefaultPrefix)
	cfg.Retention = cmp.Or(cfg.Retention, DefaultRetention)
	cfg.PerUser = cmp.Or(cfg.PerUser, DefaultPerUser)
	return &Recorder{cfg: cfg, rdb: rdb, db: db}
}

// keys are the hash of the detail of the user's shard and its index of
// last updates.
func (r *Recorder) keys(app int64, user string) []string {
	stem := keyspace.Shard(r.cfg.Prefix, app, user)
	return []string{stem + "st", stem + "st-at"}
}

// set records states of users of one shard and returns, per entry, 1 if
// the entry reached its state for the first time (to be counted) and 0 if
// it had been there before. A user's field is their entries, one a line:
// "message|channel rank state ms states-reached" (the states a bit mask, so
// that a repeat is not counted again even after a later state), the line
// updated last at the end, so that the lines run oldest first. The state
// shown never goes back to a lower rank.
//
// The script works on each user's field as a string, with plain finds and
// splices that run in C, rather than decoding every line into Lua tables
// and encoding them back: a user holds up to PerUser lines, and decoding
// them all for each new one cost as much as the rest of the delivery.
// Trimming drops lines from the front (the oldest) while the first is past
// Retention or there are more than PerUser. The users changed are dated
// in the index, and the users not updated within Retention dropped. KEYS
// detail, index; ARGV now ms, cap, retention ms, then per entry: user,
// field, rank, state.
var set = redis.NewScript(keyspace.ShardLua + `
local bits = {pending = 1, sent = 2, delivered = 4, read = 8, failed = 16, expired = 32}
local now, cap, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local n = (#ARGV - 3) / 4
local val, order, dirty = {}, {}, {}
do
  local names = {}
  for i = 1, n do
    local u = ARGV[4*i]
    if not val[u] then val[u] = ''; names[#names + 1] = u end
  end
  for i = 1, #names, 1000 do
    local part = {unpack(names, i, math.min(i + 999, #names))}
    local vs = redis.call('HMGET', KEYS[1], unpack(part))
    for j, u in ipairs(part) do
      val[u] = vs[j] or ''
      order[#order + 1] = u
    end
  end
end
-- line returns where the line of field f starts and ends in v, or nil.
local function line(v, f)
  local p
  if string.sub(v, 1, #f + 1) == f .. ' ' then p = 1 else
    p = string.find(v, '\n' .. f .. ' ', 1, true)
    if not p then return nil end
    p = p + 1
  end
  local e = string.find(v, '\n', p, true)
  return p, e and e - 1 or #v
end
-- cut removes the characters p..e of v and the line break after (or
-- before, for the last line).
local function cut(v, p, e)
  if e < #v then return string.sub(v, 1, p - 1) .. string.sub(v, e + 2) end
  if p == 1 then return '' end
  return string.sub(v, 1, p - 2)
end
local function append(v, l)
  if v == '' then return l end
  return v .. '\n' .. l
end
local out = {}
for i = 1, n do
  local a = 4*i
  local u, field, rk, st = ARGV[a], ARGV[a+1], tonumber(ARGV[a+2]), ARGV[a+3]
  local v = val[u]
  local bit = bits[st] or 0
  local p, e = line(v, field)
  local orank, ostate, oms, mask = -1, nil, nil, 0
  if p then
    local r, s2, ms, m = string.match(string.sub(v, p, e), ' (%d+) ([^ ]+) (%d+) (%d+)$')
    orank, ostate, oms, mask = tonumber(r), s2, ms, tonumber(m)
  end
  local first = bit > 0 and math.floor(mask / bit) % 2 == 0
  out[i] = first and 1 or 0
  if first then mask = mask + bit end
  if orank > rk or (ostate == st and not first) then
    if first then
      v = string.sub(v, 1, p - 1) .. field .. ' ' .. orank .. ' ' .. ostate .. ' ' .. oms .. ' ' .. mask .. string.sub(v, e + 1)
      dirty[u] = true
    end
  else
    if p then v = cut(v, p, e) end
    v = append(v, field .. ' ' .. rk .. ' ' .. st .. ' ' .. ARGV[1] .. ' ' .. mask)
    dirty[u] = true
  end
  val[u] = v
end
local sets, dates = {}, {}
for _, u in ipairs(order) do
  if dirty[u] then
    local v = val[u]
    local _, breaks = string.gsub(v, '\n', '\n')
    local count = v == '' and 0 or breaks + 1
    while count > 0 do
      local ms = tonumber(string.match(v, '^[^\n]* (%d+) %d+\n') or string.match(v, '^[^\n]* (%d+) %d+$'))
      if count <= cap and ms and ms > now - keep then break end
      local e = string.find(v, '\n', 1, true)
      v = e and string.sub(v, e + 1) or ''
      count = count - 1
    end
    sets[#sets + 1] = u
    sets[#sets + 1] = v
    dates[#dates + 1] = now
    dates[#dates + 1] = u
  end
end
if #sets > 0 then write_shard(KEYS[1], KEYS[2], sets, {}, dates, now, keep) end
return out`)

// Record stores entries: the detail with one script per shard of their
// users in one pipelined round trip, then the aggregates of the entries
// that reached their state for the first time in one statement. Recording
// the same entries again (a chunk sent twice, an ack repeated) therefore
// counts nothing more.
func (r *Recorder) Record(ctx context.Context, entries []Entry, now time.Time) error {
	if len(entries) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	byShard := keyspace.ByUserShard(len(entries), func(i int) (int64, string) { return entries[i].App, entries[i].User })
	cmds := make([]*redis.Cmd, len(byShard))
	_, err := rscript.Pipelined(ctx, r.rdb, []*redis.Script{set}, func(p redis.Pipeliner) {
		for c, idx := range byShard {
			keys := r.keys(entries[idx[0]].App, entries[idx[0]].User)
			args := make([]any, 0, 3+4*len(idx))
			args = append(args, now.UnixMilli(), r.cfg.PerUser, r.cfg.Retention.Milliseconds())
			for _, i := range idx {
				e := entries[i]
				args = append(args, e.User, e.Message+"|"+e.Channel, rank[e.State], e.State)
			}
			cmds[c] = set.EvalSha(ctx, p, keys, args...)
		}
	})
	if err != nil {
		return fmt.Errorf("record status detail: %w", err)
	}
	first := make([]bool, len(entries))
	for c, idx := range byShard {
		res, _ := cmds[c].Int64Slice()
		for j, i := range idx {
			first[i] = j < len(res) && res[j] == 1
		}
	}
	if r.db == nil {
		return nil
	}
	type key struct {
		occ            int64
		channel, state string
	}
	counts := map[key]int64{}
	for i, e := range entries {
		if e.Occurrence != 0 && first[i] {
			counts[key{e.Occurrence, e.Channel, e.State}]++
		}
	}
	if len(counts) == 0 {
		return nil
	}
	rows := make([]store.MessageStat, 0, len(counts))
	for k, n := range counts {
		rows = append(rows, store.MessageStat{OccurrenceID: k.occ, Channel: k.channel, State: k.state, N: n})
	}
	// A stable order keeps concurrent upserts from deadlocking each other.
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.OccurrenceID != b.OccurrenceID {
			return a.OccurrenceID < b.OccurrenceID
		}
		if a.Channel != b.Channel {
			return a.Channel < b.Channel
		}
		return a.State < b.State
	})
	upd := clause.Assignments(map[string]any{"n": gorm.Expr("n + excluded.n")})
	if store.IsMySQL(r.db) {
		upd = clause.Assignments(map[string]any{"n": gorm.Expr("n + VALUES(n)")})
	}
	err = store.Transaction(ctx, r.db, func(tx *gorm.DB) error {
		return tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "occurrence_id"}, {Name: "channel"}, {Name: "state"}},
			DoUpdates: upd,
		}).Create(&rows).Error
	})
	if err != nil {
		return fmt.Errorf("record status counts: %w", err)
	}
	return nil
}

// Detail is the last state of one (message, channel) of a user.
type Detail struct {
	Message    string    `json:"message"`
	Occurrence int64     `json:"occurrence,omitempty"`
	Channel    string    `json:"channel"`
	State      string    `json:"state"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// User returns the user's retained detail, newest first, at most limit.
func (r *Recorder) User(ctx context.Context, app int64, user string, limit int, occurrenceOf func(string) int64) ([]Detail, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := r.rdb.HGet(ctx, r.keys(app, user)[0], user).Result()
	if err != nil && err != redis.Nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	out := []Detail{}
	for _, line := range strings.Split(v, "\n") {
		parts := strings.Split(line, " ")
		if len(parts) < 4 {
			continue
		}
		ms, _ := strconv.ParseInt(parts[3], 10, 64)
		msg, channel, _ := cutLast(parts[0], "|")
		out = append(out, Detail{Message: msg, Occurrence: occurrenceOf(msg), Channel: channel, State: parts[2],
			UpdatedAt: time.UnixMilli(ms).UTC()})
	}
	// Newest first; of two at the same instant, the later recorded.
	slices.Reverse(out)
	slices.SortStableFunc(out, func(a, b Detail) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
	return out[:min(len(out), max(limit, 0))], nil
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// Counts returns an occurrence's aggregates: channel → state → count.
func Counts(ctx context.Context, db *gorm.DB, occurrence int64) (map[string]map[string]int64, error) {
	var rows []store.MessageStat
	if err := db.WithContext(ctx).Where("occurrence_id = ?", occurrence).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("read status counts: %w", err)
	}
	out := map[string]map[string]int64{}
	for _, r := range rows {
		if out[r.Channel] == nil {
			out[r.Channel] = map[string]int64{}
		}
		out[r.Channel][r.State] = r.N
	}
	return out, nil
}
