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
//   - Per-user detail in Redis: P{app:uN}:user:st (a sorted set of
//     "message|channel" by last update) and P{app:uN}:user:sth (its state,
//     time and the states it reached), hash-tagged by the user's shard
//     (keyspace.User) so that a chunk's or a batch's entries are one script
//     per shard, not one per user. Capped at Config.PerUser entries per user (the oldest drop out)
//     and expiring Config.Retention after the user's last update. At the
//     defaults (200 entries, 7 days) a user costs at most about 200 × 90
//     bytes ≈ 18 KB of Redis, and only users who got a message within the
//     retention cost anything.
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

func (r *Recorder) keys(app int64, user string) []string {
	stem := keyspace.User(r.cfg.Prefix, app, user)
	return []string{stem + "st", stem + "sth"}
}

// set records states of users of one shard and returns, per entry, 1 if
// the entry reached its state for the first time (to be counted) and 0 if
// it had been there before. Each value is "rank|state|ms|states reached"
// (a bit mask, so that a repeat is not counted again even after a later
// state). The state shown never goes back to a lower rank. Each user's
// detail is then trimmed once (past Retention, over PerUser) and its
// expiry extended. KEYS st, sth per entry; ARGV now ms, cap, retention ms,
// then per entry: field, rank, state.
var set = redis.NewScript(`
local bits = {pending = 1, sent = 2, delivered = 4, read = 8, failed = 16, expired = 32}
local now, cap, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out, touched, seen = {}, {}, {}
for i = 1, #KEYS / 2 do
  local st, sth = KEYS[2*i-1], KEYS[2*i]
  local a = 3 + 3*(i-1)
  local field, rk, state = ARGV[a+1], tonumber(ARGV[a+2]), ARGV[a+3]
  local bit = bits[state] or 0
  local old = redis.call('HGET', sth, field)
  local orank, ostate, oms, mask = -1, nil, nil, 0
  if old then
    local r, s, ms, m = string.match(old, '^(%d+)|([^|]*)|(%d+)|?(%d*)$')
    if r then
      orank, ostate, oms = tonumber(r), s, ms
      mask = tonumber(m) or bits[s] or 0
    end
  end
  local first = bit > 0 and math.floor(mask / bit) % 2 == 0
  out[i] = first and 1 or 0
  if first then mask = mask + bit end
  if orank > rk or (ostate == state and not first) then
    if first then redis.call('HSET', sth, field, orank .. '|' .. ostate .. '|' .. oms .. '|' .. mask) end
  else
    redis.call('HSET', sth, field, rk .. '|' .. state .. '|' .. now .. '|' .. mask)
    redis.call('ZADD', st, now, field)
  end
  if not seen[st] then
    seen[st] = true
    table.insert(touched, {st, sth})
  end
end
for _, k in ipairs(touched) do
  local st, sth = k[1], k[2]
  local gone = redis.call('ZRANGE', st, '-inf', now - keep, 'BYSCORE')
  local n = redis.call('ZCARD', st) - #gone
  if n > cap then
    for _, f in ipairs(redis.call('ZRANGE', st, #gone, #gone + n - cap - 1)) do table.insert(gone, f) end
  end
  if #gone > 0 then
    redis.call('ZREM', st, unpack(gone))
    redis.call('HDEL', sth, unpack(gone))
  end
  redis.call('PEXPIRE', st, keep)
  redis.call('PEXPIRE', sth, keep)
end
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
			keys := make([]string, 0, 2*len(idx))
			args := make([]any, 0, 3+3*len(idx))
			args = append(args, now.UnixMilli(), r.cfg.PerUser, r.cfg.Retention.Milliseconds())
			for _, i := range idx {
				e := entries[i]
				keys = append(keys, r.keys(e.App, e.User)...)
				args = append(args, e.Message+"|"+e.Channel, rank[e.State], e.State)
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
	k := r.keys(app, user)
	fields, err := r.rdb.ZRevRange(ctx, k[0], 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	out := make([]Detail, 0, len(fields))
	if len(fields) == 0 {
		return out, nil
	}
	vals, err := r.rdb.HMGet(ctx, k[1], fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	for i, f := range fields {
		v, ok := vals[i].(string)
		if !ok {
			continue
		}
		msg, channel, _ := cutLast(f, "|")
		parts := strings.Split(v, "|")
		if len(parts) < 3 {
			continue
		}
		ms, _ := strconv.ParseInt(parts[2], 10, 64)
		out = append(out, Detail{Message: msg, Occurrence: occurrenceOf(msg), Channel: channel, State: parts[1],
			UpdatedAt: time.UnixMilli(ms).UTC()})
	}
	return out, nil
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
