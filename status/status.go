// Package status records what happened to each (message, channel, user):
// pending, sent, delivered (the client acknowledged it), read, failed or
// expired.
//
// Two records at two costs:
//
//   - Aggregates in MySQL (table message_stats): per occurrence, channel and
//     state, how many entries reached that state. One upsert per call to
//     Record or Count, which callers make per chunk (workers) or per batch of acks
//     (gateways), never per user. At most 3 channels × 6 states = 18 rows
//     per occurrence.
//   - Per-user detail of the gateway and inbox channels: the user's inbox
//     entry itself (inbox.Mark: when the message was stored, sent over a
//     gateway, acknowledged and read, and over which channel), so that
//     delivering and acknowledging a message online costs no status write
//     of its own. The writer whose HSETNX set an inbox field counts its
//     state (Count). This detail is kept as long as the inbox keeps the
//     message.
//   - Per-user detail of the push channel and of expired messages (which
//     left the inbox) in Redis: P{app:uN}#st:<user> (keyspace.Shard: the
//     hash tag of the user's shard), a hash with one field per state each
//     (message, channel) of the user reached, "message|channel|state",
//     and when it first did. Recording is plain commands, pipelined with
//     those of the chunk's or the batch's other users: HSETNX of each
//     field (the first to set it counts it), and per user PEXPIRE and
//     HLEN, no script. A user's detail expires Retention after its last
//     update. Reads show the newest Config.PerUser entries; a hash that
//     passes 4 × PerUser fields is trimmed, the least recently updated
//     entries dropped until PerUser entries remain, so that a user costs at
//     most about 4 × PerUser × 40 bytes of Redis (32 KB at the defaults,
//     200 and 7 days), and only users who got a message within the
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
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/chime-dev/chime/inbox"
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

// key is the hash of the user's detail.
func (r *Recorder) key(app int64, user string) string {
	return keyspace.Shard(r.cfg.Prefix, app, user) + "st:" + user
}

// Record stores entries: the detail in one pipelined round trip (and one
// more for the users whose detail is to be trimmed), then the aggregates of the entries
// that reached their state for the first time in one statement. Recording
// the same entries again (a chunk sent twice, an ack repeated) therefore
// counts nothing more.
func (r *Recorder) Record(ctx context.Context, entries []Entry, now time.Time) error {
	if len(entries) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	first, err := r.detail(ctx, entries, now)
	if err != nil {
		return fmt.Errorf("record status detail: %w", err)
	}
	var firsts []Entry
	for i, e := range entries {
		if first[i] {
			firsts = append(firsts, e)
		}
	}
	return r.count(ctx, firsts)
}

// Count adds entries to the aggregates only, in one statement, for states
// whose detail is kept elsewhere (the inbox keeps those of the gateway and
// inbox channels, see inbox.Mark): each entry is a state its (message,
// channel, user) reached for the first time, which the caller knows from
// the write that set it.
func (r *Recorder) Count(ctx context.Context, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return r.count(ctx, entries)
}

// CountChunk adds the first states of one chunk of a group run (package
// online) to the aggregates, once per chunk user whatever the tries at
// the chunk and however they cut it. entries are all the states of the
// chunk's own users that the inboxes hold, whichever try stored them (a
// try that follows a failure or a crash between the writes and the count
// finds them again); firsts those this try's writes set; others states
// of other users (contact copies) this try set, counted as Count does.
// The run records the last chunk user counted (store.CountThrough), in
// the same transaction as the counts: entries of users after it are
// counted, and of the users up to it only firsts (stored by this try
// after an earlier one counted that far: a user who joined the chunk, or
// a second worker on it). Without such a run firsts are counted alone.
// last is the chunk's last user.
func (r *Recorder) CountChunk(ctx context.Context, occurrence int64, group int, last string, entries, firsts, others []Entry) error {
	if r.db == nil || len(entries)+len(others) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := store.Transaction(ctx, r.db, func(tx *gorm.DB) error {
		through, found, err := store.CountThrough(tx, occurrence, group, last)
		if err != nil {
			return err
		}
		add := slices.Clone(others)
		if !found {
			return countIn(tx, append(add, firsts...))
		}
		for _, e := range entries {
			if e.User > through {
				add = append(add, e)
			}
		}
		for _, e := range firsts {
			if e.User <= through {
				add = append(add, e)
			}
		}
		return countIn(tx, add)
	})
	if err != nil {
		return fmt.Errorf("record status counts: %w", err)
	}
	return nil
}

func (r *Recorder) count(ctx context.Context, entries []Entry) error {
	if r.db == nil || len(entries) == 0 {
		return nil
	}
	err := store.Transaction(ctx, r.db, func(tx *gorm.DB) error { return countIn(tx, entries) })
	if err != nil {
		return fmt.Errorf("record status counts: %w", err)
	}
	return nil
}

// countIn adds entries to the aggregates in tx, in one statement.
func countIn(tx *gorm.DB, entries []Entry) error {
	type key struct {
		occ            int64
		channel, state string
	}
	counts := map[key]int64{}
	for _, e := range entries {
		if e.Occurrence != 0 {
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
	if store.IsMySQL(tx) {
		upd = clause.Assignments(map[string]any{"n": gorm.Expr("n + VALUES(n)")})
	}
	return tx.Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "occurrence_id"}, {Name: "channel"}, {Name: "state"}},
		DoUpdates: upd,
	}).Create(&rows).Error
}

// Detail is the last state of one (message, channel) of a user.
type Detail struct {
	Message    string    `json:"message"`
	Occurrence int64     `json:"occurrence,omitempty"`
	Channel    string    `json:"channel"`
	State      string    `json:"state"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// field names the record of e's state.
func field(e Entry) string { return e.Message + "|" + e.Channel + "|" + e.State }

// detail records entries in Redis and returns, per entry, whether it
// reached its state for the first time.
func (r *Recorder) detail(ctx context.Context, entries []Entry, now time.Time) ([]bool, error) {
	ms := strconv.FormatInt(now.UnixMilli(), 10)
	type user struct {
		app  int64
		name string
	}
	sets := make([]*redis.BoolCmd, len(entries))
	lens := map[user]*redis.IntCmd{}
	var order []user
	if _, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, e := range entries {
			sets[i] = p.HSetNX(ctx, r.key(e.App, e.User), field(e), ms)
			if u := (user{e.App, e.User}); lens[u] == nil {
				lens[u] = nil
				order = append(order, u)
			}
		}
		for _, u := range order {
			k := r.key(u.app, u.name)
			p.PExpire(ctx, k, r.cfg.Retention)
			lens[u] = p.HLen(ctx, k)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	first := make([]bool, len(entries))
	for i, c := range sets {
		first[i] = c.Val()
	}
	var over []string
	for _, u := range order {
		if lens[u].Val() > int64(trimAt*r.cfg.PerUser) {
			over = append(over, r.key(u.app, u.name))
		}
	}
	if len(over) > 0 {
		r.trim(ctx, over, now)
	}
	return first, nil
}

// trimAt × PerUser fields make a user's hash trimmed. An entry has a
// field per state it reached, one to four (pending, sent, delivered, read
// on the inbox and gateway channels; sent or failed on push), so a hash
// trimmed to PerUser entries holds at most about 3 × PerUser fields and
// takes PerUser more before it is trimmed again.
const trimAt = 4

// trim drops from the hashes keys the least recently updated entries until
// PerUser entries remain, and those older than Retention. A failure only
// leaves a hash larger until the next trim.
func (r *Recorder) trim(ctx context.Context, keys []string, now time.Time) {
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	_, _ = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.HGetAll(ctx, k)
		}
		return nil
	})
	_, _ = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			es := entriesOf(cmds[i].Val())
			var drop []string
			left := len(es)
			for _, e := range es {
				if left > r.cfg.PerUser || e.updated <= now.Add(-r.cfg.Retention).UnixMilli() {
					drop = append(drop, e.fields...)
					left--
				}
			}
			if len(drop) > 0 {
				p.HDel(ctx, k, drop...)
			}
		}
		return nil
	})
}

// record is one (message, channel) of a user's detail: the state shown
// (the highest reached), when it was reached, when the entry was last
// updated and its fields.
type record struct {
	message, channel, state string
	at, updated             int64
	fields                  []string
}

// entriesOf groups a user's fields by (message, channel), least recently
// updated first.
func entriesOf(fields map[string]string) []*record {
	by := map[string]*record{}
	var out []*record
	for f, v := range fields {
		ms, err := strconv.ParseInt(v, 10, 64)
		rest, state, ok := cutLast(f, "|")
		if err != nil || !ok {
			continue
		}
		e := by[rest]
		if e == nil {
			msg, channel, _ := cutLast(rest, "|")
			e = &record{message: msg, channel: channel, state: state, at: ms}
			by[rest] = e
			out = append(out, e)
		} else if rank[state] > rank[e.state] || (rank[state] == rank[e.state] && ms > e.at) {
			e.state, e.at = state, ms
		}
		e.updated = max(e.updated, ms)
		e.fields = append(e.fields, f)
	}
	slices.SortFunc(out, func(a, b *record) int {
		return cmp.Or(cmp.Compare(a.updated, b.updated), strings.Compare(a.message, b.message), strings.Compare(a.channel, b.channel))
	})
	return out
}

// User returns the user's retained detail, newest first, at most limit and
// at most PerUser entries: per (message, channel), the highest state it
// reached (a state never goes back) and when. marks are what the user's
// inbox keeps of the gateway and inbox channels (inbox.Store.Marks),
// merged with the detail kept here.
func (r *Recorder) User(ctx context.Context, app int64, user string, limit int, occurrenceOf func(string) int64, marks []inbox.Mark) ([]Detail, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	fields, err := r.rdb.HGetAll(ctx, r.key(app, user)).Result()
	if err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	for _, m := range marks {
		for f, at := range markFields(m) {
			// An expired message left the inbox as if read: its
			// (message, channel) stays expired.
			rest, _, _ := cutLast(f, "|")
			if _, gone := fields[rest+"|"+Expired]; !gone {
				fields[f] = strconv.FormatInt(at.UnixMilli(), 10)
			}
		}
	}
	es := entriesOf(fields)
	out := []Detail{}
	for _, e := range slices.Backward(es) {
		out = append(out, Detail{Message: e.message, Occurrence: occurrenceOf(e.message), Channel: e.channel, State: e.state,
			UpdatedAt: time.UnixMilli(e.at).UTC()})
	}
	// Newest first; of two at the same instant, the later updated.
	slices.SortStableFunc(out, func(a, b Detail) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
	return out[:min(len(out), max(limit, 0), r.cfg.PerUser)], nil
}

// markFields are the detail fields (field's names) of what the inbox kept
// of a message, and when each state was reached: the gateway channel
// when it was sent over a gateway (then acknowledged and read over the
// socket), the inbox channel when it was stored while the user was offline
// or acknowledged or read through the API.
func markFields(m inbox.Mark) map[string]time.Time {
	out := map[string]time.Time{}
	set := func(channel, state string, at time.Time) {
		if !at.IsZero() {
			out[field(Entry{Message: m.ID, Channel: channel, State: state})] = at
		}
	}
	set(Gateway, Sent, m.Sent)
	if m.AckedOverGateway {
		set(Gateway, Delivered, m.Acked)
	} else {
		set(Inbox, Delivered, m.Acked)
	}
	if m.ReadOverGateway {
		set(Gateway, Read, m.Read)
	} else {
		set(Inbox, Read, m.Read)
	}
	if !m.StoredOnline {
		set(Inbox, Pending, m.Stored)
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
