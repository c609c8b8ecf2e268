// Package presence keeps, in Redis, which gateway instance holds each user's
// WebSocket connections, so that workers can route a message to the
// instance that can deliver it.
//
// Each user has one sorted set, P{app:uN}:user:conns, whose members are
// "instance|conn" (one per open connection, so a user may be online on
// several devices and gateways) and whose scores are the instants, in Redis's
// own clock, at which each entry stops counting. A gateway registers a
// connection when it opens, refreshes all its live connections every
// heartbeat interval (one script per shard of their users, pipelined), and removes a connection when it closes.
// Removal is ZREM of the connection's own member, so a closing connection
// can never remove the route of a newer connection of the same user.
//
// The bound: a connection counts as online until TTL after its gateway last
// refreshed it. A gateway refreshes only connections that answered its last
// WebSocket ping, so a client that vanishes is closed (and removed) within
// one heartbeat interval plus the ping timeout, and the connections of a
// gateway that dies stop counting within TTL. Lookups compare scores with
// Redis's TIME, so gateway and worker clocks do not matter.
//
// The key is hash-tagged by the user's shard, {app:uN} (keyspace.User), so
// that a worker looks up a chunk's users with one script per shard, each
// in one Redis Cluster slot.
package presence

import (
	"cmp"
	"context"
	"fmt"
	"slices"
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

// Key is the presence key of a user.
func Key(prefix string, app int64, user string) string {
	return keyspace.User(prefix, app, user) + "conns"
}

func (r *Registry) key(app int64, user string) string { return Key(r.cfg.Prefix, app, user) }

// Entries past their instant are dropped on every write, and the key expires
// with its latest entry. With only-if-present, a member no longer there (it
// was removed or expired) is not added back. The keys are of users of one
// shard, one per connection; it returns per connection 1 if touched, 0 if
// not. KEYS conns...; ARGV ttl ms, only-if-present, members....
var touch = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl, only = tonumber(ARGV[1]), ARGV[2] == '1'
local out = {}
for i, k in ipairs(KEYS) do
  local m = ARGV[2 + i]
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
  if only and not redis.call('ZSCORE', k, m) then
    out[i] = 0
  else
    redis.call('ZADD', k, now + ttl, m)
    local last = redis.call('ZRANGE', k, -1, -1, 'WITHSCORES')
    if #last > 0 then redis.call('PEXPIREAT', k, last[2]) end
    out[i] = 1
  end
end
return out`)

// lookup returns, per key (users of one shard), the live members.
var lookup = redis.NewScript(`
local t = redis.call('TIME')
local now = '(' .. (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local out = {}
for i, k in ipairs(KEYS) do out[i] = redis.call('ZRANGE', k, now, '+inf', 'BYSCORE') end
return out`)

var scripts = []*redis.Script{touch, lookup}

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
	byShard := keyspace.ByUserShard(len(conns), func(i int) (int64, string) { return conns[i].App, conns[i].User })
	cmds := make([]*redis.Cmd, len(byShard))
	_, err := rscript.Pipelined(ctx, r.rdb, scripts, func(p redis.Pipeliner) {
		for c, idx := range byShard {
			keys := make([]string, len(idx))
			args := make([]any, 0, 2+len(idx))
			args = append(args, r.cfg.TTL.Milliseconds(), flag)
			for j, i := range idx {
				keys[j] = r.key(conns[i].App, conns[i].User)
				args = append(args, conns[i].member())
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
	if err := r.rdb.ZRem(ctx, r.key(c.App, c.User), c.member()).Err(); err != nil {
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

// Scripts are the scripts LookupCmds queues, for rscript.Pipelined.
func Scripts() []*redis.Script { return scripts }

// Lookups is the answer to a LookupCmds.
type Lookups struct {
	cmds  []*redis.Cmd
	index [][]int
	n     int
}

// LookupCmds queues the lookup of users of app on p: one script per shard
// of the users, whatever their number.
func (r *Registry) LookupCmds(ctx context.Context, p redis.Pipeliner, app int64, users []string) *Lookups {
	l := &Lookups{index: keyspace.ByUserShard(len(users), func(i int) (int64, string) { return app, users[i] }), n: len(users)}
	for _, idx := range l.index {
		keys := make([]string, len(idx))
		for j, i := range idx {
			keys[j] = r.key(app, users[i])
		}
		l.cmds = append(l.cmds, lookup.EvalSha(ctx, p, keys))
	}
	return l
}

// Instances returns, per user looked up, the distinct instances holding
// the user's connections (none: offline). Call it after the pipeline ran.
func (l *Lookups) Instances() [][]string {
	out := make([][]string, l.n)
	for c, idx := range l.index {
		res, _ := l.cmds[c].Slice()
		for j, i := range idx {
			if j >= len(res) {
				continue
			}
			members, _ := res[j].([]any)
			for _, m := range members {
				s, _ := m.(string)
				if inst, _, _ := strings.Cut(s, "|"); s != "" && !slices.Contains(out[i], inst) {
					out[i] = append(out[i], inst)
				}
			}
		}
	}
	return out
}
