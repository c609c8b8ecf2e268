// Package policy decides, per chunk of a group, which users a reminder is
// sent to: users' opt-outs (of a reminder, a category, a channel), quiet
// hours (the user's or the app's default) and the app's frequency caps.
//
// # One round trip per chunk
//
// Users' preferences are kept in MySQL (store.UserPreference, the source
// of truth) and mirrored in Redis, in one hash per shard of an app's users
// (keyspace.UserShards) whose fields are user IDs. A chunk's decision is
// one Lua script for the whole chunk on a single Redis, one per shard its
// users fall in on a Redis Cluster (a script's keys share the shard's hash
// tag there), all in one pipeline: for each shard the script reads the
// users' entries, applies the opt-outs and quiet hours and, for the users
// still to be sent, counts the frequency cap in the shard's hash of that
// category (a field per user listing the occurrences that counted): a few
// commands per shard, none per user. A script's own cost (its call, its
// arguments, its reply) was most of a shard's share of a chunk, so it is
// paid once per chunk where the server allows. The cap's entry is the occurrence, so
// a chunk sent again after a crash counts nobody twice; entries older than
// the window are dropped whenever a user's field is read, and the hash
// expires between a window and a window and a sixteenth after its last
// write (its expiry is set ahead, once per sixteenth of the window, rather
// than by every chunk; the workers' clocks are taken to agree to within
// that sixteenth). A user the category no longer
// reaches keeps a field of at most the cap's count of entries (about 20
// bytes each) while other users of the shard keep the hash alive.
//
// Quiet hours are local times of day in the zone of the location the
// reminder reaches the user at (a user with a zone of their own is reached
// through a location of that zone): the worker computes the local minute
// once per chunk and the script compares.
//
// # A lost mirror
//
// Each shard's hash holds a marker field (" built", which no user ID can
// be). A hash without it was lost (or never written since the app's first
// preference): the script answers so without deciding anything, and the
// worker rebuilds that shard from MySQL (the app's rows of that shard) and
// decides again. Opt-outs are therefore never silently off after a Redis
// loss; the cost is one MySQL query per lost shard, once. The rebuild only
// sets fields still missing (HSETNX), so a preference written by the API
// meanwhile (MySQL first, then the mirror) is not overwritten by the older
// copy the rebuild read.
//
// # An app without preferences
//
// A chunk of a reminder without a frequency cap reads nothing per user in
// Redis but preferences, so for an app that has none it needs no script:
// everyone is sent, or held or dropped together by the app's default quiet
// hours (one local minute for the whole chunk). Whether the app has any is
// one key per app, keyspace.PreferenceState: "none" or "some" as MySQL
// last said (store.AppHasPreferences), each for StateTTL, or else a
// generation. Every preference write sets a new generation once it is in
// MySQL (Mirror, after the API's commit; Rebuild, after a bulk import); a
// worker that finds no answer takes the generation (starting one if the
// key is missing), asks MySQL, and records the answer only if the key
// still holds that generation (setStateScript). A write that returned
// before the state a chunk is decided with was read (its decision's own
// GET, or the read ahead below) is therefore always seen: either MySQL
// had its row when the worker asked, or its generation kept "none" from
// being recorded. A lost key only costs the question to MySQL again; a
// deleted preference needs no new generation ("some" left standing only
// costs the script until it expires).
//
// The state is read per chunk, not once per group, so the guarantee is
// per chunk; it costs no round trip where the script runs anyway: a
// process that found an app having preferences remembers so for StateTTL
// (a stale memory only costs the script, which is always right) and
// reminders with a cap never read it. For an app without preferences a
// chunk is one GET of a short key instead of a script carrying the chunk's
// user IDs. A worker reads it ahead (ReadState), in the round trip it
// makes just before the chunk anyway (the group's start ack or the previous
// checkpoint), and decides with that read (DecideWith): a write that
// returned before that round trip is seen. metrics.PolicyChunk counts a GET
// made alone as the chunk's round trip, one read ahead as none (more when
// MySQL is asked), and metrics.PolicySkipped the chunk.
//
// # Holds
//
// A user in quiet hours of a reminder marked quiet: hold is held until
// the quiet hours end, if the reminder is still valid then; otherwise, or
// for quiet: drop, recorded as quiet. A chunk's held users are one MySQL
// row per release instant (store.QuietHold), written before the chunk's
// checkpoint, and the leader releases it at that instant as a group whose
// task names its users (package scheduler). The released group goes
// through the same decision: its users' opt-outs and caps are checked at
// the time they are sent.
package policy

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/deliveryevent"
	"github.com/chime-dev/chime/internal/rscript"
	"github.com/chime-dev/chime/keyspace"
	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/metrics"
	"github.com/chime-dev/chime/store"
)

// Outcome types of users a chunk does not send: delivery events' types.
const (
	SkippedPreference = deliveryevent.SkippedPreference
	Quiet             = deliveryevent.Quiet
	Capped            = deliveryevent.Capped
)

// Config configures the policy.
type Config struct {
	// Prefix starts every key. Defaults to keyspace.DefaultPrefix.
	Prefix string
	// StateTTL is how long a worker's finding that an app has no
	// preferences, or has some, stands before MySQL is asked again (a
	// preference write ends it at once). Defaults to DefaultStateTTL.
	StateTTL time.Duration
}

// Policy reads and writes users' preferences in Redis and decides chunks.
type Policy struct {
	cfg Config
	rdb redis.UniversalClient
	db  *gorm.DB
	// cluster is set for a Redis Cluster (any client but a single
	// Redis's), whose scripts each touch one shard's keys (one slot).
	cluster bool
	// some is the apps this process found having preferences.
	some remembered
	// testHook, if set, is called at the steps of asking MySQL whether an
	// app has preferences ("count", "set"), for tests to interleave writes.
	testHook func(step string)
}

// New returns a policy. db is read only to rebuild a lost shard and written
// for held chunks.
func New(cfg Config, rdb redis.UniversalClient, db *gorm.DB) *Policy {
	cfg.Prefix = cmp.Or(cfg.Prefix, keyspace.DefaultPrefix)
	cfg.StateTTL = cmp.Or(cfg.StateTTL, DefaultStateTTL)
	_, single := rdb.(*redis.Client)
	return &Policy{cfg: cfg, rdb: rdb, db: db, cluster: !single}
}

// maxScriptUsers bounds the users one decision script decides on a single
// Redis (whole shards, so one shard may pass it): Redis serves nobody
// else while a script runs, about 6 µs a user here, so a large
// CHIME_CHUNK_SIZE is decided in several scripts of one pipeline.
const maxScriptUsers = 1000

// calls splits a chunk's shards (indexes of its users by shard) into the
// decision scripts that decide them: one script for the whole chunk on a
// single Redis, where a script may touch any key (several for a chunk of
// more than maxScriptUsers), and one per shard on a Redis Cluster, where a
// script's keys must share a slot. A script's fixed cost (its call, its
// arguments' parsing, its reply) is then paid once per chunk instead of
// once per shard where the server allows it.
func (p *Policy) calls(shards [][]int) [][][]int {
	var calls [][][]int
	n := 0
	for _, idx := range shards {
		if len(calls) == 0 || p.cluster || n+len(idx) > maxScriptUsers {
			calls, n = append(calls, nil), 0
		}
		calls[len(calls)-1] = append(calls[len(calls)-1], idx)
		n += len(idx)
	}
	return calls
}

func countUsers(shards [][]int) int {
	n := 0
	for _, idx := range shards {
		n += len(idx)
	}
	return n
}

// zone returns the location of a zone name, time.UTC for one that is not
// a zone.
func (p *Policy) zone(name string) *time.Location {
	loc, err := localtime.LoadZone(name)
	if err != nil {
		return time.UTC
	}
	return loc
}

// Shard is the shard of an app's user, stored with the user's preferences
// so that a lost shard is rebuilt from its rows.
func Shard(app int64, user string) int { return keyspace.UserShard(app, user) }

func (p *Policy) hashKey(app int64, shard int) string {
	return keyspace.UserShardKey(p.cfg.Prefix, app, shard) + "prefs"
}

// capKey is the hash of a shard's users' counts under the cap of a
// category, a field per user.
func (p *Policy) capKey(app int64, shard int, category string) string {
	return keyspace.UserShardKey(p.cfg.Prefix, app, shard) + "cap:" + category
}

var mirrorScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`)

// Mirror writes a user's preferences document (as stored in MySQL) to
// Redis, and ends any finding that the app has none. Call it after the
// MySQL write commits; a failure leaves the mirror behind until the
// document is written again (and, if the app had none, the finding until
// it expires, StateTTL). A shard not in Redis is left alone: it is not
// built, so the next chunk of its users rebuilds it from MySQL, which
// already has the document.
func (p *Policy) Mirror(ctx context.Context, app int64, user, doc string) error {
	m, err := encodeMirror(doc)
	if err != nil {
		return err
	}
	if err := p.changed(ctx, app); err != nil {
		return err
	}
	if err := mirrorScript.Run(ctx, p.rdb, []string{p.hashKey(app, keyspace.UserShard(app, user))}, user, m).Err(); err != nil {
		return fmt.Errorf("mirror preferences: %w", err)
	}
	return nil
}

var rebuildScript = redis.NewScript(keyspace.ShardLua + `
for i = 1, #ARGV, 2 do
  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i+1])
end
-- ' built' marks the shard's hash complete (user IDs hold no spaces);
-- its value keeps the hash a hash table (keyspace.ShardLua).
redis.call('HSET', KEYS[1], ' built', TABLE)
return 1
`)

// rebuild loads an app's shard from MySQL into Redis.
func (p *Policy) rebuild(ctx context.Context, app int64, shard int) error {
	docs, err := store.ShardPreferences(ctx, p.db, app, shard)
	if err != nil {
		return err
	}
	args := make([]any, 0, 2*len(docs))
	for u, d := range docs {
		m, err := encodeMirror(d)
		if err != nil {
			return fmt.Errorf("user %q: %w", u, err)
		}
		args = append(args, u, m)
	}
	if err := rebuildScript.Run(ctx, p.rdb, []string{p.hashKey(app, shard)}, args...).Err(); err != nil {
		return fmt.Errorf("rebuild preferences of shard %d: %w", shard, err)
	}
	return nil
}

// Rebuild loads every shard of an app's preferences from MySQL into
// Redis, as the first chunk of each shard would; preferences written
// straight to MySQL (a bulk import) reach the workers so, and a finding
// that the app had none ends.
func (p *Policy) Rebuild(ctx context.Context, app int64) error {
	if err := p.changed(ctx, app); err != nil {
		return err
	}
	for s := range keyspace.UserShards {
		if err := p.rebuild(ctx, app, s); err != nil {
			return err
		}
	}
	return nil
}

// decideScript decides a chunk's users of one or more shards. KEYS: per
// shard, its hash and its cap hash of the category (touched only when a
// cap applies). ARGV: reminder key, category, critical, local minute now,
// default quiet start and end (-1: none), cap max (0: none), cap window
// ms, now ms, the occurrence, then per shard the count of its users and
// the users. It answers one string, a code per user in ARGV's order,
// separated by spaces: "s" send, "s<ch,...>" send without those channels,
// "p" opted out, "q<end minute>" in quiet hours, "c" capped, "u" for every
// user of a shard whose hash is not built (nothing of that shard decided
// or counted). One string rather than a reply per user: Redis encodes, and
// the client parses, one bulk reply instead of a chunk's worth.
//
// A user's cap field lists the occurrences that counted, "occ@ms,...",
// those older than the window dropped whenever it is read; all the fields
// a shard's chunk changes are one HSET. The hash lives at least a window
// after its last write: its field ' expires' holds the instant (ms, then
// TABLE, which keeps the hash a hash table) it is set to expire, and a
// write that would outlive it sets it again, a window and a sixteenth
// ahead (STEPS), so that a shard's hash gets one PEXPIRE per sixteenth of
// a window rather than one per chunk.
var decideScript = redis.NewScript(keyspace.ShardLua + `
local rem, cat, crit = ARGV[1], ARGV[2], ARGV[3] == '1'
local now, dqs, dqe = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local capmax, window, nowms, member = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10]
local stamp = member .. '@' .. ARGV[9]
local function inquiet(qs, qe)
  if qs < 0 or qs == qe then return false end
  if qs < qe then return now >= qs and now < qe end
  return now >= qs or now < qe
end
-- Users without quiet hours of their own have the app's: one answer.
local dcode = 's'
if not crit and inquiet(dqs, dqe) then dcode = 'q' .. dqe end
local out, o = {}, 0
local at = 11
for s = 1, #KEYS / 2 do
  local n = tonumber(ARGV[at])
  local first, last = at + 1, at + n
  at = last + 1
  local vals = redis.call('HMGET', KEYS[2 * s - 1], ' built', unpack(ARGV, first, last))
  if not vals[1] then
    for i = 1, n do o = o + 1; out[o] = 'u' end
  else
    -- The opt-outs and quiet hours first: only the users still to be sent
    -- have their cap field read.
    local base, send, sent = o, {}, {}
    for i = 1, n do
      local v = vals[i + 1]
      local code = dcode
      if v then
        -- Most users set no preference: only those are parsed.
        local p = cjson.decode(v)
        code = 's'
        if p.n then code = 'p' end
        if code == 's' and p.r then for _, k in ipairs(p.r) do if k == rem then code = 'p' end end end
        if code == 's' and not crit and cat ~= '' and p.c then
          for _, c in ipairs(p.c) do if c == cat then code = 'p' end end
        end
        if code == 's' and not crit then
          if p.q then
            if inquiet(p.q[1], p.q[2]) then code = 'q' .. p.q[2] end
          else
            code = dcode
          end
        end
        if code == 's' and p.ch then code = 's' .. table.concat(p.ch, ',') end
      end
      o = o + 1
      out[o] = code
      if capmax > 0 and string.byte(code) == 115 then -- 's'
        sent[#sent + 1] = i
        send[#send + 1] = ARGV[first + i - 1]
      end
    end
    if #send > 0 then
      local caps = redis.call('HMGET', KEYS[2 * s], ' expires', unpack(send))
      local writes, w = {}, 0
      for j, i in ipairs(sent) do
        local was = caps[j + 1]
        if not was then
          -- Not counted in the window yet: the common case, and no parse.
          writes[w + 1], writes[w + 2], w = send[j], stamp, w + 2
        else
          local kept, seen = {}, false
          for e in string.gmatch(was, '[^,]+') do
            local occ, ms = string.match(e, '^(.-)@(%d+)$')
            if occ == member then
              seen = true
              kept[#kept + 1] = e
            elseif ms and tonumber(ms) > nowms - window then
              kept[#kept + 1] = e
            end
          end
          if not seen then
            if #kept >= capmax then out[base + i] = 'c' else kept[#kept + 1] = stamp end
          end
          local joined = table.concat(kept, ',')
          if joined ~= was then
            writes[w + 1], writes[w + 2], w = send[j], joined, w + 2
          end
        end
      end
      if w > 0 then
        local expires = tonumber(caps[1] and string.match(caps[1], '^%d+'))
        if not expires or expires < nowms + window then
          local ahead = window + math.floor(window / STEPS)
          writes[w + 1], writes[w + 2] = ' expires', (nowms + ahead) .. TABLE
          redis.call('HSET', KEYS[2 * s], unpack(writes))
          redis.call('PEXPIRE', KEYS[2 * s], ahead)
        else
          redis.call('HSET', KEYS[2 * s], unpack(writes))
        end
      end
    end
  end
end
return table.concat(out, ' ')
`)

// Scripts are the scripts Decide pipelines, for rscript.Pipelined.
var scripts = []*redis.Script{decideScript}

// Decision is what a chunk's users get.
type Decision struct {
	// Send are the users to send to, in the chunk's order.
	Send []string
	// Exclude names the channels each user of Send opted out of; nil if
	// none did.
	Exclude map[string][]string
	// Outcomes are the users not sent, by outcome type (SkippedPreference,
	// Quiet, Capped); held users are in Holds instead.
	Outcomes map[string][]string
	// Holds are the users held by quiet hours, by release instant.
	Holds map[time.Time][]string
}

// Count returns how many users of outcome type typ d has.
func (d Decision) Count(typ string) int { return len(d.Outcomes[typ]) }

// capOf is the frequency cap that applies to pol's reminder, 0 if none.
func capOf(pol *message.Policy) int {
	if pol == nil || pol.Category == "" || pol.CapMax <= 0 || pol.CapWindow <= 0 {
		return 0
	}
	return pol.CapMax
}

// Decide decides a chunk of m's users (users of one app) at now, in one
// round trip (two or more only after Redis lost a shard, or when MySQL is
// asked whether the app has preferences). A chunk of a reminder without a
// cap, of an app without preferences, is decided without the decision
// script: one GET.
func (p *Policy) Decide(ctx context.Context, m message.Message, users []string, now time.Time) (Decision, error) {
	return p.DecideWith(ctx, m, users, now, nil)
}

// DecideWith decides as Decide does, taking the app's preference state
// from read (ReadState, queued on the round trip just before) instead of
// reading it; a nil read is Decide.
func (p *Policy) DecideWith(ctx context.Context, m message.Message, users []string, now time.Time, read *StateRead) (Decision, error) {
	pol := m.Policy
	if pol == nil {
		pol = &message.Policy{}
	}
	loc := p.zone(m.Zone)
	local := now.In(loc)
	minute := local.Hour()*60 + local.Minute()
	qs, qe := -1, -1
	if pol.Quiet != nil && !pol.Critical {
		qs, qe = pol.Quiet.Start, pol.Quiet.End
	}
	capMax := capOf(pol)
	crit := "0"
	if pol.Critical {
		crit = "1"
	}
	trips := 0
	if capMax == 0 {
		// Without a cap only users' preferences are read in Redis: an app
		// with none needs no script.
		none, n, err := p.noPreferences(ctx, m.App, now, read)
		trips += n
		if err != nil {
			return Decision{}, fmt.Errorf("decide chunk: %w", err)
		}
		if none {
			metrics.PolicySkipped()
			if !inQuiet(minute, qs, qe) {
				metrics.PolicyChunk(trips, nil)
				return Decision{Send: users}, nil
			}
			codes := make([]string, len(users))
			for i := range codes {
				codes[i] = "q" + strconv.Itoa(qe)
			}
			return p.decision(m, pol, loc, now, users, codes, trips)
		}
	}
	shards := keyspace.ByUserShard(len(users), func(i int) (int64, string) { return m.App, users[i] })
	codes := make([]string, len(users))
	todo := shards
	for attempt := 0; len(todo) > 0; attempt++ {
		trips++
		calls := p.calls(todo)
		cmds := make([]*redis.Cmd, len(calls))
		_, err := rscript.Pipelined(ctx, p.rdb, scripts, func(pipe redis.Pipeliner) {
			for j, call := range calls {
				keys := make([]string, 0, 2*len(call))
				args := []any{m.Reminder, pol.Category, crit, minute, qs, qe, capMax, pol.CapWindow.Milliseconds(), now.UnixMilli(), m.Occurrence}
				for _, idx := range call {
					shard := keyspace.UserShard(m.App, users[idx[0]])
					keys = append(keys, p.hashKey(m.App, shard), p.capKey(m.App, shard, pol.Category))
					args = append(args, len(idx))
					for _, i := range idx {
						args = append(args, users[i])
					}
				}
				cmds[j] = decideScript.EvalSha(ctx, pipe, keys, args...)
			}
		})
		if err != nil {
			return Decision{}, fmt.Errorf("decide chunk: %w", err)
		}
		var again [][]int
		for j, call := range calls {
			reply, err := cmds[j].Text()
			if err != nil {
				return Decision{}, fmt.Errorf("decide chunk: %w", err)
			}
			var res []string
			if reply != "" {
				res = strings.Split(reply, " ")
			}
			if n := countUsers(call); len(res) != n {
				return Decision{}, fmt.Errorf("decide chunk: %d answers for %d users", len(res), n)
			}
			for _, idx := range call {
				if res[0] == "u" {
					shard := keyspace.UserShard(m.App, users[idx[0]])
					if attempt > 0 {
						return Decision{}, fmt.Errorf("decide chunk: preferences of shard %d still not built after a rebuild", shard)
					}
					trips++ // the rebuild's script (its rows come from MySQL)
					if err := p.rebuild(ctx, m.App, shard); err != nil {
						return Decision{}, err
					}
					again = append(again, idx)
				} else {
					for k, i := range idx {
						codes[i] = res[k]
					}
				}
				res = res[len(idx):]
			}
		}
		todo = again
	}
	return p.decision(m, pol, loc, now, users, codes, trips)
}

// inQuiet reports whether minute is in the quiet hours qs to qe (-1: none),
// as the decision script reads them.
func inQuiet(minute, qs, qe int) bool {
	switch {
	case qs < 0 || qs == qe:
		return false
	case qs < qe:
		return minute >= qs && minute < qe
	default:
		return minute >= qs || minute < qe
	}
}

// decision turns the codes of a chunk's users (the decision script's) into
// its Decision, and counts it in trips round trips.
func (p *Policy) decision(m message.Message, pol *message.Policy, loc *time.Location, now time.Time, users, codes []string, trips int) (Decision, error) {
	d := Decision{Send: make([]string, 0, len(users))}
	out := func(typ, u string) {
		if d.Outcomes == nil {
			d.Outcomes = map[string][]string{}
		}
		d.Outcomes[typ] = append(d.Outcomes[typ], u)
	}
	for i, u := range users {
		c := codes[i]
		switch c[0] {
		case 's':
			d.Send = append(d.Send, u)
			if len(c) > 1 {
				if d.Exclude == nil {
					d.Exclude = map[string][]string{}
				}
				d.Exclude[u] = strings.Split(c[1:], ",")
			}
		case 'p':
			out(SkippedPreference, u)
		case 'c':
			out(Capped, u)
		case 'q':
			end, _ := strconv.Atoi(c[1:])
			if pol.Drop {
				out(Quiet, u)
				continue
			}
			at := localtime.Next(now, localtime.Of(end*60), loc)
			if !m.ExpiresAt.IsZero() && !at.Before(m.ExpiresAt) {
				out(Quiet, u) // no longer valid when the quiet hours end
				continue
			}
			if d.Holds == nil {
				d.Holds = map[time.Time][]string{}
			}
			d.Holds[at] = append(d.Holds[at], u)
		default:
			return Decision{}, fmt.Errorf("decide chunk: unknown answer %q", c)
		}
	}
	held := 0
	for _, us := range d.Holds {
		held += len(us)
	}
	metrics.PolicyChunk(trips, map[string]int{SkippedPreference: d.Count(SkippedPreference), Quiet: d.Count(Quiet), Capped: d.Count(Capped), "held": held})
	return d, nil
}

// Hold records d's held users of a chunk (its idempotency key names it)
// of occurrence, one row per release instant; a chunk sent again holds
// them once.
func (p *Policy) Hold(ctx context.Context, occurrence int64, chunk string, d Decision) error {
	if len(d.Holds) == 0 {
		return nil
	}
	var rows []store.QuietHold
	for _, at := range slices.SortedFunc(maps.Keys(d.Holds), func(a, b time.Time) int { return a.Compare(b) }) {
		users := d.Holds[at]
		sum := sha256.Sum256([]byte(chunk + "@" + strconv.FormatInt(at.UnixMilli(), 10)))
		rows = append(rows, store.QuietHold{OccurrenceID: occurrence, Chunk: hex.EncodeToString(sum[:]),
			Users: strings.Join(users, "\n"), Count: len(users), ReleaseAt: at.UTC()})
	}
	if err := store.AddQuietHolds(ctx, p.db, rows); err != nil {
		return fmt.Errorf("hold chunk: %w", err)
	}
	return nil
}

// HeldUsers reads a store.QuietHold's users.
func HeldUsers(h store.QuietHold) []string {
	if h.Users == "" {
		return nil
	}
	return strings.Split(h.Users, "\n")
}
