// Package grouping splits a reminder's subscribers at a location into
// groups and keeps the membership index workers read at fire time.
//
// # Hash and layout
//
// A user's bucket is XXH64(user_id) mod 65536 (MaxGroups), where XXH64 is
// the 64-bit xxHash of the user ID's bytes with seed 0 (https://xxhash.com,
// stable across versions and languages). The bucket is stored with the
// subscription in MySQL and never changes.
//
// Each (reminder, location) has its own layout: a group count N that is a
// power of two, chosen from that location's audience so that a group holds
// about GroupSize users (DefaultGroupSize, 400). A user is in group
// bucket mod N, which is XXH64(user_id) mod N. Because N is a power of two,
// going from N to 2N splits each group g into g and g+N, and going back
// merges them again: only the users whose group changes move, and the
// other groups of the location are not touched (Regroup). A location's
// layout grows as it is written (Apply) and is fitted, growing or
// shrinking, before each fire (Fit).
//
// A group task records the layout it was prepared with. A reader asking for
// group g of layout n while the index has another layout m still gets
// exactly that group's users: the union of groups g, g+n, g+2n ... when
// m > n, or group g mod m filtered by the hash when m < n (Members). So a
// fire in flight keeps its layout whatever happens to the index meanwhile,
// including a rebuild after Redis lost it. A read is a pipeline, not a
// transaction, so a regroup's or a rebuild's commands may run between its
// reads of the layout and of the group; each step of a regroup and a
// rebuild's drop count themselves in the location's count of moves, which
// a read takes before and after, and a read that saw it change is made
// again (at most maxReads reads, then the group's task fails and is
// retried).
//
// # Index
//
// For each (reminder, location) Redis holds, per non-empty group, a set of
// its integer-like user IDs and a packed string of the others (see
// member.go), a set of the non-empty group numbers, the layout, a
// regroup's source layout while it runs ("from"), the count of moves and
// a "built" marker. All keys of a location share one hash tag, so they live in
// one Redis Cluster slot; the writes are Lua scripts that read the layout
// and write both keys of a group in one step, so a write never lands in a
// group of a layout being replaced. With groups of at most 512 integer-like
// IDs Redis stores a set as an intset, about 5 bytes a member (larger sets
// cost about 50 bytes a member); a UUID costs 17 bytes in the packed string,
// any other ID its length and one byte.
//
// At fire time a group's set is read with DUMP, which hands over the
// intset's bytes in one string, rather than SMEMBERS, which formats each
// member as a reply of its own (see dump.go).
//
// MySQL is the source of truth. The index is written after each committed
// subscription change and is rebuilt from MySQL whenever the built marker or
// the layout is missing (first use, Redis restart, eviction). A rebuild
// races with subscription changes committed while it runs: a user removed
// during a rebuild may stay in the index until the next rebuild.
package grouping

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/internal/rscript"
	"github.com/chime-dev/chime/store"
)

// DefaultGroupSize is the number of users a group holds at most on average
// before its location's layout doubles where Redis does not say how large
// its compact sets may be: SizeFor Redis's default set-max-intset-entries,
// 512. With at most 400 on average, the largest of a location's groups
// stays under 512 (the spread of a hash over a group is about the square
// root of its size, 20). The measurement behind it is in
// docs/architecture.md.
const DefaultGroupSize = 400

// MaxDefaultGroupSize bounds the group size an index takes from Redis's
// setting: SizeFor(4096), the largest groups measured, with which a
// million-user fire was fastest (docs/benchmarks.md).
const MaxDefaultGroupSize = 3200

// SizeFor returns the group size that keeps integer-like IDs in compact
// intsets on a Redis whose set-max-intset-entries is entries: 25/32 of it
// (400 for Redis's default 512, 3,200 for 4096), so that a location's
// largest group and a group a quarter over the target, which a write
// regroups (growAt), both stay under the limit. At most
// MaxDefaultGroupSize, at least 1.
func SizeFor(entries int) int { return max(1, min(entries*25/32, MaxDefaultGroupSize)) }

// RedisSize returns SizeFor the set-max-intset-entries of rdb, and
// DefaultGroupSize where Redis does not name it or the call fails (its
// error returned: a Redis error reply where CONFIG is refused, as on some
// hosted Redis, or the connection's).
func RedisSize(ctx context.Context, rdb redis.UniversalClient) (int, error) {
	m, err := rdb.ConfigGet(ctx, "set-max-intset-entries").Result()
	if err != nil {
		return DefaultGroupSize, fmt.Errorf("read set-max-intset-entries: %w", err)
	}
	n, err := strconv.Atoi(m["set-max-intset-entries"])
	if err != nil || n < 1 {
		return DefaultGroupSize, nil
	}
	return SizeFor(n), nil
}

// MaxGroups bounds a location's group count; it is also the number of
// buckets.
const MaxGroups = 65536

// ErrNotBuilt is returned by reads when the index of a location is missing
// from Redis and must be rebuilt from MySQL first.
var ErrNotBuilt = errors.New("membership index not built")

// Of returns the group of userID among n groups.
func Of(userID string, n int) int {
	if n <= 1 {
		return 0
	}
	return int(xxhash.Sum64String(userID) % uint64(n))
}

// Bucket returns userID's bucket, its group among MaxGroups, which is what
// a subscription stores.
func Bucket(userID string) int { return Of(userID, MaxGroups) }

// Fixed returns the layout of a reminder that fixes its group count at n:
// n rounded up to a power of two, at most MaxGroups.
func Fixed(n int) int {
	if n <= 1 {
		return 1
	}
	return min(1<<bits.Len(uint(n-1)), MaxGroups)
}

// Fit returns the layout for users subscribers with groups of about size,
// starting from the current layout (0 if none): the smallest power of two
// that keeps the groups at most size on average. A layout shrinks only when
// its groups are under a quarter of size on average, so an audience that
// hovers around a boundary does not regroup at every fire.
func Fit(users, size, current int) int {
	size = max(size, 1)
	want := Fixed((users + size - 1) / size)
	if current <= 0 || want > current {
		return want
	}
	// Shrinking halves the layout until its groups average at least a
	// quarter of size.
	n := current
	for n > want && users*4 < n*size {
		n /= 2
	}
	return n
}

// Index is the Redis membership index, rebuilt from the store when missing.
type Index struct {
	rdb    redis.UniversalClient
	db     *gorm.DB
	prefix string
	// GroupSize is the users a group holds at most on average before its
	// location's layout doubles. Defaults to RedisSize: from Redis's
	// set-max-intset-entries, DefaultGroupSize where Redis does not say.
	GroupSize int

	sizeMu sync.Mutex
	size   int // RedisSize, once Redis answered or refused

	// lockTTL, if set, replaces the package's lockTTL (tests).
	lockTTL time.Duration

	// beforeMembers, if set, queues commands on a read's pipeline after
	// its reads of the layout and before those of the members, for tests
	// to hold a read there while a regroup runs.
	beforeMembers func(pipe redis.Pipeliner)

	// noDump is set once Redis refused DUMP: sets are then read with
	// SMEMBERS.
	noDump atomic.Bool
}

// NewIndex returns an index whose keys start with prefix (for example
// "chime:").
func NewIndex(rdb redis.UniversalClient, db *gorm.DB, prefix string) *Index {
	return &Index{rdb: rdb, db: db, prefix: prefix}
}

// Prefix returns what the index's keys start with.
func (x *Index) Prefix() string { return x.prefix }

// Target returns the group size the index aims at: GroupSize or, unset,
// RedisSize, read from Redis on first use. A refusal (a Redis error reply,
// as where CONFIG is disabled) is kept; a failed call (Redis unreachable)
// answers DefaultGroupSize and is asked again next time, so that a process
// started during an outage does not size groups unlike the others for
// good.
func (x *Index) Target() int {
	if x.GroupSize > 0 {
		return x.GroupSize
	}
	x.sizeMu.Lock()
	defer x.sizeMu.Unlock()
	if x.size == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		size, err := RedisSize(ctx, x.rdb)
		var refused redis.Error
		if err != nil && !errors.As(err, &refused) {
			return size
		}
		x.size = size
	}
	return x.size
}

// Loc names the (reminder, location) pair an index entry belongs to.
type Loc struct {
	Reminder int64
	Location int64
}

func (x *Index) base(l Loc) string {
	return x.prefix + "idx:{" + strconv.FormatInt(l.Reminder, 10) + ":" + strconv.FormatInt(l.Location, 10) + "}:"
}
func (x *Index) builtKey(l Loc) string  { return x.base(l) + "built" }
func (x *Index) groupsKey(l Loc) string { return x.base(l) + "groups" }
func (x *Index) lockKey(l Loc) string   { return x.base(l) + "lock" }

// fixedKey marks a location whose reminder fixes its group count: writes
// never grow its layout.
func (x *Index) fixedKey(l Loc) string { return x.base(l) + "fixed" }

// layoutKey holds the location's group count; fromKey the one it is
// leaving while a regroup moves members.
func (x *Index) layoutKey(l Loc) string { return x.base(l) + "layout" }
func (x *Index) fromKey(l Loc) string   { return x.base(l) + "from" }

// movesKey counts the steps that move users between a location's groups
// or take them out to put them back (a regroup's start and each of its
// batches, a rebuild's drop): a read whose count is the same before and
// after it saw no such step.
func (x *Index) movesKey(l Loc) string { return x.base(l) + "moves" }

func (x *Index) memberPrefix(l Loc) string {
	return x.base(l) + "g:"
}
func (x *Index) memberKey(l Loc, g int) string {
	return x.memberPrefix(l) + strconv.Itoa(g)
}
func (x *Index) packedPrefix(l Loc) string {
	return x.base(l) + "p:"
}
func (x *Index) packedKey(l Loc, g int) string {
	return x.packedPrefix(l) + strconv.Itoa(g)
}

// Member is one user's place in the index.
type Member struct {
	Loc
	// Bucket is Bucket(UserID); the index puts the user in the group of its
	// location's layout.
	Bucket int
	UserID string
}

// applyScript writes one location's changes under its current layout, so a
// regroup (which changes the layout first) cannot have a write land in a
// group it has already moved. While a regroup runs, removals also reach the
// group the member had in the layout being left, so a member the regroup
// has not moved yet is not moved back in after it was removed.
//
// Integer-like IDs go in the group's set; the others, packed by the caller
// (see member.go), in its packed string, which is rewritten once per group
// the call touches: its removed entries dropped, walking entry by entry so
// that no match straddles two entries, and the added ones appended.
//
// packedCountLua defines packed_count(v), the number of entries of packed
// string v, counted by walking their headers (member.go), for the scripts
// that size groups.
const packedCountLua = `
local function packed_count(v)
  local i, size, count = 1, #v, 0
  while i <= size do
    local h = string.byte(v, i)
    if h >= 240 then h = 16 end
    i = i + h + 1
    count = count + 1
  end
  return count
end
`

// Set members are added and removed with one SADD or SREM per group (of
// at most 1,000, within Lua's stack), removals first as in ARGV: a call
// per member cost more than the rest of the script.
//
// KEYS: layout, from, groups, fixed. ARGV: member key prefix, packed key
// prefix, then quadruples of op ("+" or "-"), bucket, set member and packed
// entry, one of the two empty. A removal of a packed entry also names the
// raw ID as set member: an index written before the packed strings keeps
// any ID in the set. Returns 0 when the index is not built, otherwise 1
// plus the members of the largest group added to (0 when the layout is
// fixed), which tells Apply when the layout has become too small.
var applyScript = redis.NewScript(packedCountLua + `
local n = tonumber(redis.call('GET', KEYS[1]))
if not n then return 0 end
local from = tonumber(redis.call('GET', KEYS[2]))
local sized = redis.call('EXISTS', KEYS[4]) == 0
local listed, drops, adds, touched, order, grown = {}, {}, {}, {}, {}, {}
local function touch(g)
  if not touched[g] then
    touched[g] = true
    order[#order + 1] = g
  end
end
local function drop(g, e)
  touch(g)
  local d = drops[g]
  if not d then d = {}; drops[g] = d end
  d[e] = true
end
local sets = {['+'] = {groups = {}, of = {}}, ['-'] = {groups = {}, of = {}}}
local function member(op, g, raw)
  local s = sets[op]
  local m = s.of[g]
  if not m then m = {}; s.of[g] = m; s.groups[#s.groups + 1] = g end
  m[#m + 1] = raw
end
for i = 3, #ARGV, 4 do
  local b = tonumber(ARGV[i+1])
  local g = b % n
  local raw, packed = ARGV[i+2], ARGV[i+3]
  if ARGV[i] == '+' then
    grown[g] = 0
    if raw ~= '' then member('+', g, raw) end
    if packed ~= '' then
      touch(g)
      local a = adds[g]
      if not a then a = {}; adds[g] = a end
      a[#a + 1] = packed
    end
    if not listed[g] then
      listed[g] = true
      redis.call('SADD', KEYS[3], g)
    end
  else
    if raw ~= '' then
      member('-', g, raw)
      if from then member('-', b % from, raw) end
    end
    if packed ~= '' then
      drop(g, packed)
      if from then drop(b % from, packed) end
    end
  end
end
for _, op in ipairs({'-', '+'}) do
  local s, cmd = sets[op], op == '+' and 'SADD' or 'SREM'
  for _, g in ipairs(s.groups) do
    local m = s.of[g]
    for i = 1, #m, 1000 do
      redis.call(cmd, ARGV[1] .. g, unpack(m, i, math.min(i + 999, #m)))
    end
  end
end
for _, g in ipairs(order) do
  local key = ARGV[2] .. g
  local v = redis.call('GET', key) or ''
  local d = drops[g]
  local count -- entries of v, once known
  if d and #v > 0 then
    local keep, i, size = {}, 1, #v
    while i <= size do
      local h = string.byte(v, i)
      local len = h
      if h >= 240 then len = 16 end
      local e = string.sub(v, i, i + len)
      if not d[e] then keep[#keep + 1] = e end
      i = i + len + 1
    end
    v = table.concat(keep)
    count = #keep
  end
  if adds[g] then
    if sized then grown[g] = (count or packed_count(v)) + #adds[g] end
    v = v .. table.concat(adds[g])
  end
  if #v == 0 then redis.call('DEL', key) else redis.call('SET', key, v) end
end
local most = 0
if sized then
  for g, packed in pairs(grown) do
    most = math.max(most, packed + redis.call('SCARD', ARGV[1] .. g))
  end
end
return 1 + most`)

// Apply adds and removes members, one script per location, all pipelined
// in one round trip. Removals are applied before additions. Callers apply
// changes after they are committed to the store, and add only members that
// are new to their group: an integer-like ID added twice is kept once, any
// other is stored twice (and read once) until the next rebuild. A location
// whose index is not built is left alone: its rebuild reads the store,
// where callers have committed the changes before applying them.
//
// A location sized per its audience whose write leaves a group more than a
// quarter over the target size is regrouped to fit before Apply returns
// (see grow): an audience registered all at once into a new location's
// single group would otherwise sit in one huge hash-table set, about ten
// times the intsets' memory, until the next fire's preparation regroups
// it, and that regroup of millions of members is more than a preparation
// can do in time.
func (x *Index) Apply(ctx context.Context, add, remove []Member) error {
	most, err := x.apply(ctx, add, remove)
	if err != nil {
		return err
	}
	for _, l := range most {
		if err := x.grow(ctx, l); err != nil {
			return err
		}
	}
	return nil
}

// apply writes the changes and returns the locations whose groups have
// outgrown their layout (see Apply).
func (x *Index) apply(ctx context.Context, add, remove []Member) ([]Loc, error) {
	if len(add) == 0 && len(remove) == 0 {
		return nil, nil
	}
	args := map[Loc][]any{}
	var order []Loc
	put := func(op string, ms []Member) {
		for _, m := range ms {
			a, ok := args[m.Loc]
			if !ok {
				order = append(order, m.Loc)
				a = []any{x.memberPrefix(m.Loc), x.packedPrefix(m.Loc)}
			}
			switch {
			case integerLike(m.UserID):
				a = append(a, op, m.Bucket, m.UserID, "")
			case op == "-":
				a = append(a, op, m.Bucket, m.UserID, appendPacked(nil, m.UserID))
			default:
				a = append(a, op, m.Bucket, "", appendPacked(nil, m.UserID))
			}
			args[m.Loc] = a
		}
	}
	put("-", remove)
	put("+", add)
	pipe := x.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(order))
	for i, l := range order {
		// EVAL, not EVALSHA: a pipeline cannot fall back on NOSCRIPT, and
		// Redis caches the compiled script by its body.
		cmds[i] = applyScript.Eval(ctx, pipe, []string{x.layoutKey(l), x.fromKey(l), x.groupsKey(l), x.fixedKey(l)}, args[l]...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		// Part of the change may be missing: make the next reader rebuild
		// these locations from the store.
		x.invalidate(context.WithoutCancel(ctx), order)
		return nil, fmt.Errorf("update membership index: %w", err)
	}
	var full []Loc
	for i, l := range order {
		if n, _ := cmds[i].Int(); n-1 > x.growAt() {
			full = append(full, l)
		}
	}
	return full, nil
}

// growAt is the group size past which a write regroups its location: a
// quarter over the target, which the largest of thousands of groups
// averaging the target does not reach (the spread is about the square root
// of the size), and under Redis's intset limit at the default target.
func (x *Index) growAt() int { return x.Target() + x.Target()/4 }

// grow regroups l to the layout that fits its audience if that layout is
// larger, or finishes a regroup cut short. It gives way when the location's
// rebuild lock is taken: the rebuild or regroup holding it sizes the
// layout, and the next write checks again.
func (x *Index) grow(ctx context.Context, l Loc) error {
	_, err := x.tryLocked(ctx, l, func(string) error {
		y, err := x.Groups(ctx, l)
		if errors.Is(err, ErrNotBuilt) {
			return nil
		}
		if err != nil {
			return err
		}
		from, err := x.rdb.Get(ctx, x.fromKey(l)).Int()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("grow layout: %w", err)
		}
		want := Fit(y.Users(), x.Target(), y.N)
		if want <= y.N && from == 0 {
			return nil
		}
		return x.regroup(ctx, l, max(want, y.N))
	})
	return err
}

func (x *Index) invalidate(ctx context.Context, locs []Loc) {
	for _, l := range locs {
		x.rdb.Del(ctx, x.builtKey(l))
	}
}

// Members returns the user IDs of group g of layout n, or ErrNotBuilt,
// sorted in byte order (the order checkpoints compare in), each once. When
// the index has the layout n and no regroup is under way, as at every fire,
// that is one round trip; otherwise a second one reads the groups of the
// index's layouts that hold g's users (see the package comment), their sets
// and their packed strings. A read that a regroup's or rebuild's step ran
// across is made again (up to maxReads reads, two round trips each). A
// damaged packed string fails the read and sends the location to a
// rebuild.
func (x *Index) Members(ctx context.Context, l Loc, n, g int) ([]string, error) {
	pipe := x.rdb.Pipeline()
	r := x.QueueMembers(ctx, pipe, MembersRequest{Loc: l, Layout: n, Group: g})
	pipe.Exec(ctx) //nolint:errcheck // each reply is checked by Members: a missing key is no error
	return r.Members(ctx)
}

// A MembersRequest names one group to MembersOf: its location, the layout
// its task was made with and its number.
type MembersRequest struct {
	Loc    Loc
	Layout int
	Group  int
}

// MembersOf reads the members of several groups as Members does, the
// groups whose location is in the layout asked (nearly all) in one
// pipeline: a task carrying the small groups of many locations reads them
// in one round trip. errs[i] is reqs[i]'s error (ErrNotBuilt among them).
func (x *Index) MembersOf(ctx context.Context, reqs []MembersRequest) (members [][]string, errs []error) {
	members, errs = make([][]string, len(reqs)), make([]error, len(reqs))
	reads := make([]*MembersRead, len(reqs))
	pipe := x.rdb.Pipeline()
	for i, q := range reqs {
		reads[i] = x.QueueMembers(ctx, pipe, q)
	}
	pipe.Exec(ctx) //nolint:errcheck // each reply is checked by Members: a missing key is no error
	for i, r := range reads {
		members[i], errs[i] = r.Members(ctx)
	}
	return members, errs
}

// A MembersRead is the read of a group's members queued on a pipeline by
// QueueMembers.
type MembersRead struct {
	x   *Index
	req MembersRequest
	r   groupReplies
}

// QueueMembers queues on pipe the read Members makes of a group, so that
// it shares a round trip with other commands (a worker's start ack);
// Members returns its result once pipe ran.
func (x *Index) QueueMembers(ctx context.Context, pipe redis.Pipeliner, req MembersRequest) *MembersRead {
	return &MembersRead{x: x, req: req, r: x.readGroup(ctx, pipe, req.Loc, req.Group)}
}

// Members returns what Index.Members does: no further round trip when the
// location is in the layout asked with no regroup under way and none ran
// across the read, as at every fire; otherwise more (see Index.Members).
func (m *MembersRead) Members(ctx context.Context) ([]string, error) {
	q := m.req
	n := max(q.Layout, 1)
	x, r := m.x, m.r
	smembers := false
	for i := range maxReads {
		if i > 0 {
			// Users moved while the group was read, or its set is not an
			// intset: read it again, the set with SMEMBERS if so.
			pipe := x.rdb.Pipeline()
			r = x.readGroupAs(ctx, pipe, q.Loc, q.Group, smembers || x.noDump.Load())
			pipe.Exec(ctx) //nolint:errcheck // each reply is checked by groupRead: a missing key is no error
		}
		out, done, lm, f, err := x.groupRead(ctx, r, q.Loc, n, q.Group)
		if errors.Is(err, errNotIntset) {
			smembers = true
			continue
		}
		if errors.Is(err, errMoved) {
			continue
		}
		if done || err != nil {
			return out, err
		}
		out, err = x.membersAcross(ctx, q.Loc, n, q.Group, lm, f)
		if !errors.Is(err, errMoved) {
			return out, err
		}
	}
	return nil, fmt.Errorf("read group %d of %d: users kept moving between the location's groups (a regroup or a rebuild) in %d reads", q.Group, n, maxReads)
}

// errMoved is a read that saw users move between the location's groups.
var errMoved = errors.New("users moved during the read")

// maxReads bounds the reads of a group whose location's users keep moving:
// a regroup moves each group in a batch or a few, a round trip apart, so a
// read made again soon mostly finds none in flight; failing, the group's
// task is retried later.
const maxReads = 8

// groupReplies are the replies readGroup queued.
type groupReplies struct {
	moves        *redis.StringCmd
	built        *redis.IntCmd
	layout, from *redis.StringCmd
	dump         *redis.StringCmd      // the set's DUMP, or nil
	members      *redis.StringSliceCmd // the set's SMEMBERS, when dump is nil
	packed       *redis.StringCmd
	movesAfter   *redis.StringCmd
}

// readGroup queues on pipe the reads of group g of l and of its location's
// layout, between two reads of the location's count of moves.
//
// A pipeline is no transaction: another client's commands (a regroup
// moving users from group g to g+n) may run between its commands, so a
// read that found the layout it asked, with no regroup under way, might
// otherwise read the group after some of its users left it. The counts of
// moves before and after tell: if they differ the read is made again.
//
// The set is read with DUMP (see dump.go) unless Redis refused it before.
func (x *Index) readGroup(ctx context.Context, pipe redis.Pipeliner, l Loc, g int) groupReplies {
	return x.readGroupAs(ctx, pipe, l, g, x.noDump.Load())
}

// readGroupAs is readGroup, the set read with SMEMBERS if smembers.
func (x *Index) readGroupAs(ctx context.Context, pipe redis.Pipeliner, l Loc, g int, smembers bool) groupReplies {
	r := groupReplies{
		moves:  pipe.Get(ctx, x.movesKey(l)),
		built:  pipe.Exists(ctx, x.builtKey(l)),
		layout: pipe.Get(ctx, x.layoutKey(l)),
		from:   pipe.Get(ctx, x.fromKey(l)),
	}
	if x.beforeMembers != nil {
		x.beforeMembers(pipe)
	}
	if smembers {
		r.members = pipe.SMembers(ctx, x.memberKey(l, g))
	} else {
		r.dump = pipe.Dump(ctx, x.memberKey(l, g))
	}
	r.packed = pipe.Get(ctx, x.packedKey(l, g))
	r.movesAfter = pipe.Get(ctx, x.movesKey(l))
	return r
}

// set returns the members of the group's set from r: the DUMP decoded,
// or errNotIntset if it is not an intset or Redis refused DUMP (it is
// then not asked again), or the SMEMBERS reply.
func (x *Index) set(r groupReplies) ([]string, error) {
	if r.dump == nil {
		return r.members.Val(), nil
	}
	payload, err := r.dump.Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil // no set: no integer-like member
	case err != nil:
		var reply redis.Error
		if !errors.As(err, &reply) {
			return nil, fmt.Errorf("read group: %w", err)
		}
		// An error reply to this command alone, the others of the read
		// having passed: DUMP renamed away or not allowed to this user.
		x.noDump.Store(true)
		return nil, errNotIntset
	}
	return intsetMembers(payload)
}

// groupRead returns the members of group g of layout n from r, done, when
// the location is in layout n with no regroup under way; otherwise it
// returns the location's layout m and regroup source f, for
// membersAcross, or errMoved if a step of a regroup or rebuild ran across
// the read.
func (x *Index) groupRead(ctx context.Context, r groupReplies, l Loc, n, g int) (out []string, done bool, m, f int, err error) {
	cmds := []redis.Cmder{r.moves, r.built, r.layout, r.from, r.packed, r.movesAfter}
	if r.dump == nil {
		cmds = append(cmds, r.members) // a DUMP's error is set's to judge
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return nil, false, 0, 0, fmt.Errorf("read group %d: %w", g, err)
		}
	}
	m, err = r.layout.Int()
	if r.built.Val() == 0 || err != nil {
		return nil, false, 0, 0, ErrNotBuilt
	}
	f, _ = r.from.Int()
	if r.moves.Val() != r.movesAfter.Val() {
		return nil, false, m, f, errMoved
	}
	if m == n && f == 0 {
		set, err := x.set(r)
		if err != nil {
			return nil, false, 0, 0, err
		}
		out, err := unpack(set, r.packed.Val())
		if err != nil {
			return nil, false, 0, 0, x.damaged(ctx, l, fmt.Errorf("read group %d: %w", g, err))
		}
		return sortedUnique(out), true, 0, 0, nil
	}
	return nil, false, m, f, nil
}

// membersAcross reads the users of group g of layout n from the groups of
// layouts m and f (a regroup's source) that hold them.
func (x *Index) membersAcross(ctx context.Context, l Loc, n, g, m, f int) ([]string, error) {
	var groups []int
	filter := false
	for _, layout := range []int{m, f} {
		switch {
		case layout == 0:
		case layout >= n:
			for h := g; h < layout; h += n {
				groups = append(groups, h)
			}
		default:
			groups = append(groups, g%layout)
			filter = true
		}
	}
	slices.Sort(groups)
	groups = slices.Compact(groups)
	keys := make([]string, len(groups))
	pipe := x.rdb.Pipeline()
	strs := make([]*redis.StringCmd, len(groups))
	moves, built := pipe.Get(ctx, x.movesKey(l)), pipe.Exists(ctx, x.builtKey(l))
	layout, from := pipe.Get(ctx, x.layoutKey(l)), pipe.Get(ctx, x.fromKey(l))
	cmds := []redis.Cmder{moves, built, layout, from}
	for i, h := range groups {
		keys[i] = x.memberKey(l, h)
		strs[i] = pipe.Get(ctx, x.packedKey(l, h))
		cmds = append(cmds, strs[i])
	}
	union := pipe.SUnion(ctx, keys...)
	movesAfter := pipe.Get(ctx, x.movesKey(l))
	pipe.Exec(ctx) //nolint:errcheck // each reply is checked below: a missing key is no error
	for _, c := range append(cmds, union, movesAfter) {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("read group %d of %d: %w", g, n, err)
		}
	}
	if built.Val() == 0 {
		return nil, ErrNotBuilt
	}
	// The groups read are those of layouts m and f: the read stands if
	// they are still the location's and no user moved meanwhile.
	lm, _ := layout.Int()
	lf, _ := from.Int()
	if moves.Val() != movesAfter.Val() || lm != m || lf != f {
		return nil, errMoved
	}
	out := union.Val()
	var err error
	for i, s := range strs {
		if out, err = unpack(out, s.Val()); err != nil {
			return nil, x.damaged(ctx, l, fmt.Errorf("read group %d of %d: group %d: %w", g, n, groups[i], err))
		}
	}
	if filter {
		// Hashed as registered: a packed ID decoded, not its entry.
		out = slices.DeleteFunc(out, func(u string) bool { return Of(u, n) != g })
	}
	return sortedUnique(out), nil
}

// damaged makes the next reader of l rebuild it from the store, since a
// damaged packed string is not guessed at, and returns err.
func (x *Index) damaged(ctx context.Context, l Loc, err error) error {
	x.rdb.Del(context.WithoutCancel(ctx), x.builtKey(l))
	return err
}

// Layout is the shape of one location's index: its group count and its
// non-empty groups with their sizes, in group order.
type Layout struct {
	N      int
	Groups []int
	Sizes  []int
}

// Users returns the users of all groups.
func (y Layout) Users() int {
	n := 0
	for _, s := range y.Sizes {
		n += s
	}
	return n
}

// layoutScript reads a location's layout and the sizes of its listed
// groups in one step: a group's set members and its packed entries (counted
// by walking their headers). KEYS: built, layout, groups; ARGV: member key
// prefix, packed key prefix.
var layoutScript = redis.NewScript(packedCountLua + `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local n = redis.call('GET', KEYS[2])
if not n then return false end
local out = {tonumber(n)}
for _, g in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local count = redis.call('SCARD', ARGV[1] .. g) + packed_count(redis.call('GET', ARGV[2] .. g) or '')
  out[#out+1] = tonumber(g)
  out[#out+1] = count
end
return out`)

// Groups returns the layout of l with its non-empty groups, or
// ErrNotBuilt.
func (x *Index) Groups(ctx context.Context, l Loc) (Layout, error) {
	return layoutOf(layoutScript.Run(ctx, x.rdb, x.layoutKeys(l), x.memberPrefix(l), x.packedPrefix(l)))
}

// GroupsOf returns the layouts of locs as Groups does, in one pipeline:
// a fire of thousands of locations checks them all in one round trip.
// errs[i] is locs[i]'s error: ErrNotBuilt, or the read's (a failed round
// trip fails every location).
func (x *Index) GroupsOf(ctx context.Context, locs []Loc) (layouts []Layout, errs []error) {
	layouts, errs = make([]Layout, len(locs)), make([]error, len(locs))
	if len(locs) == 0 {
		return layouts, errs
	}
	cmds := make([]*redis.Cmd, len(locs))
	_, _ = rscript.Pipelined(ctx, x.rdb, []*redis.Script{layoutScript}, func(p redis.Pipeliner) {
		for i, l := range locs {
			cmds[i] = layoutScript.EvalSha(ctx, p, x.layoutKeys(l), x.memberPrefix(l), x.packedPrefix(l))
		}
	})
	for i, c := range cmds {
		layouts[i], errs[i] = layoutOf(c)
	}
	return layouts, errs
}

func (x *Index) layoutKeys(l Loc) []string {
	return []string{x.builtKey(l), x.layoutKey(l), x.groupsKey(l)}
}

// layoutOf reads layoutScript's reply.
func layoutOf(c *redis.Cmd) (Layout, error) {
	v, err := c.Int64Slice()
	if errors.Is(err, redis.Nil) {
		return Layout{}, ErrNotBuilt
	}
	if err != nil {
		return Layout{}, fmt.Errorf("read groups: %w", err)
	}
	y := Layout{N: int(v[0])}
	type gs struct{ g, n int }
	var list []gs
	for i := 1; i+1 < len(v); i += 2 {
		if v[i+1] > 0 {
			list = append(list, gs{int(v[i]), int(v[i+1])})
		}
	}
	slices.SortFunc(list, func(a, b gs) int { return a.g - b.g })
	for _, e := range list {
		y.Groups = append(y.Groups, e.g)
		y.Sizes = append(y.Sizes, e.n)
	}
	return y, nil
}

// Fit makes sure the index of l is built and, when regroup is true, that
// its layout suits its audience: fixed groups if fixed > 0 (see Fixed),
// otherwise groups of about GroupSize (see Fit). Callers pass regroup only
// while no fire of l is in flight. It returns the layout to fire with.
func (x *Index) Fit(ctx context.Context, l Loc, fixed int, regroup bool) (Layout, error) {
	if err := x.EnsureBuilt(ctx, l); err != nil {
		return Layout{}, err
	}
	// Whether writes may grow the layout follows the reminder as it is now.
	var mark error
	if fixed > 0 {
		mark = x.rdb.Set(ctx, x.fixedKey(l), fixed, 0).Err()
	} else {
		mark = x.rdb.Del(ctx, x.fixedKey(l)).Err()
	}
	if mark != nil {
		return Layout{}, fmt.Errorf("mark layout: %w", mark)
	}
	y, err := x.Groups(ctx, l)
	if err != nil || !regroup {
		return y, err
	}
	want := Fit(y.Users(), x.Target(), y.N)
	if fixed > 0 {
		want = Fixed(fixed)
	}
	// A regroup cut short (a timeout, a crash) left its "from" behind:
	// reads are right meanwhile, and this finishes it.
	unfinished, err := x.rdb.Exists(ctx, x.fromKey(l)).Result()
	if err != nil {
		return Layout{}, fmt.Errorf("check regroup: %w", err)
	}
	if want == y.N && unfinished == 0 {
		return y, nil
	}
	if err := x.Regroup(ctx, l, want); err != nil {
		return Layout{}, err
	}
	return x.Groups(ctx, l)
}

// A FitRequest is one location's arguments to Fit.
type FitRequest struct {
	Loc     Loc
	Fixed   int
	Regroup bool
}

// fitsAtOnce bounds the locations FitAll builds or regroups at once.
const fitsAtOnce = 8

// FitAll is Fit for many locations, for a fire of thousands of them at one
// instant: the checks of every location (built, its layout mark, its
// groups, an unfinished regroup) go out in one pipeline, and only a
// location that must be built or regrouped pays Fit's own round trips
// (fitsAtOnce at a time). errs[i] is reqs[i]'s error.
func (x *Index) FitAll(ctx context.Context, reqs []FitRequest) (layouts []Layout, errs []error) {
	layouts, errs = make([]Layout, len(reqs)), make([]error, len(reqs))
	if len(reqs) == 0 {
		return layouts, errs
	}
	built := make([]*redis.IntCmd, len(reqs))
	marks := make([]redis.Cmder, len(reqs))
	groups := make([]*redis.Cmd, len(reqs))
	from := make([]*redis.IntCmd, len(reqs))
	_, _ = rscript.Pipelined(ctx, x.rdb, []*redis.Script{layoutScript}, func(p redis.Pipeliner) {
		for i, r := range reqs {
			l := r.Loc
			built[i] = p.Exists(ctx, x.builtKey(l), x.layoutKey(l))
			// Whether writes may grow the layout follows the reminder as
			// it is now (as in Fit).
			if r.Fixed > 0 {
				marks[i] = p.Set(ctx, x.fixedKey(l), r.Fixed, 0)
			} else {
				marks[i] = p.Del(ctx, x.fixedKey(l))
			}
			groups[i] = layoutScript.EvalSha(ctx, p, x.layoutKeys(l), x.memberPrefix(l), x.packedPrefix(l))
			from[i] = p.Exists(ctx, x.fromKey(l))
		}
	})
	// Each command's own reply is checked (the pipeline reports only its
	// first error): a location any of whose commands failed goes through
	// Fit, which reports the failure.
	failed := func(i int) bool {
		for _, c := range []redis.Cmder{built[i], marks[i], groups[i], from[i]} {
			if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
				return true
			}
		}
		return false
	}
	var alone []int
	for i, r := range reqs {
		if failed(i) || built[i].Val() != 2 {
			alone = append(alone, i)
			continue
		}
		y, err := layoutOf(groups[i])
		if err != nil {
			alone = append(alone, i)
			continue
		}
		if r.Regroup {
			want := Fit(y.Users(), x.Target(), y.N)
			if r.Fixed > 0 {
				want = Fixed(r.Fixed)
			}
			if want != y.N || from[i].Val() != 0 {
				alone = append(alone, i)
				continue
			}
		}
		layouts[i] = y
	}
	var g errgroup.Group
	g.SetLimit(fitsAtOnce)
	for _, i := range alone {
		g.Go(func() error {
			layouts[i], errs[i] = x.Fit(ctx, reqs[i].Loc, reqs[i].Fixed, reqs[i].Regroup)
			return nil
		})
	}
	_ = g.Wait()
	return layouts, errs
}

// moveScript moves the members of one group to the groups of a new layout,
// only those still there (one removed meanwhile stays removed), and keeps
// the list of non-empty groups. A set left with at most 4,096 members is
// written anew if it is a hash table: a group that one big registration
// filled past the intset limit is compact again after the fit that splits
// it (Redis never converts a set back by itself). Set members move between sets; packed
// entries between packed strings, as they are, so string IDs stay compact:
// the source string is rewritten once without the moved entries and each
// target once with them appended. KEYS: source group, source packed
// string, groups, the location's count of moves (counted once a call).
// ARGV: member key prefix, packed key prefix, source group
// number, the number of set pairs, then pairs of target group and set
// member, then pairs of target group and packed entry.
var moveScript = redis.NewScript(`
redis.call('INCR', KEYS[4])
local listed = {}
local function list(g)
  if not listed[g] then
    listed[g] = true
    redis.call('SADD', KEYS[3], g)
  end
end
local sets = tonumber(ARGV[4])
local last = 4 + 2 * sets
for i = 5, last, 2 do
  if redis.call('SREM', KEYS[1], ARGV[i+1]) == 1 then
    redis.call('SADD', ARGV[1] .. ARGV[i], ARGV[i+1])
    list(ARGV[i])
  end
end
if last < #ARGV then
  local to = {}
  for i = last + 1, #ARGV, 2 do to[ARGV[i+1]] = ARGV[i] end
  local v = redis.call('GET', KEYS[2]) or ''
  local keep, out, order, moved = {}, {}, {}, {}
  local i, size = 1, #v
  while i <= size do
    local h = string.byte(v, i)
    local len = h
    if h >= 240 then len = 16 end
    local e = string.sub(v, i, i + len)
    local g = to[e]
    if not g then
      keep[#keep + 1] = e
    elseif not moved[e] then
      moved[e] = true
      if not out[g] then out[g] = {}; order[#order + 1] = g end
      out[g][#out[g] + 1] = e
    end
    i = i + len + 1
  end
  if #order > 0 then
    if #keep == 0 then redis.call('DEL', KEYS[2]) else redis.call('SET', KEYS[2], table.concat(keep)) end
    for _, g in ipairs(order) do
      local key = ARGV[2] .. g
      redis.call('SET', key, (redis.call('GET', key) or '') .. table.concat(out[g]))
      list(g)
    end
  end
end
local left = redis.call('SCARD', KEYS[1])
if left == 0 and redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SREM', KEYS[3], ARGV[3])
elseif left > 0 and left <= 4096 and redis.call('OBJECT', 'ENCODING', KEYS[1]) == 'hashtable' then
  -- A set once grown past the intset limit stays a hash table however
  -- much it shrinks; written anew, integers are an intset again.
  local m = redis.call('SMEMBERS', KEYS[1])
  redis.call('DEL', KEYS[1])
  for i = 1, #m, 1000 do
    redis.call('SADD', KEYS[1], unpack(m, i, math.min(i + 999, #m)))
  end
end
return 1`)

// moveBatch bounds the members one moveScript call moves: each call blocks
// Redis while it runs.
const moveBatch = 5000

// Regroup changes the layout of l to n groups (a power of two), moving only
// the members whose group changes: splitting doubles, merging halves, once
// or more in one pass. A regroup cut short to another layout is finished
// first. It holds the location's rebuild lock, so it never overlaps a
// rebuild or another regroup. Writes made meanwhile go to the new layout
// (see applyScript).
func (x *Index) Regroup(ctx context.Context, l Loc, n int) error {
	return x.locked(ctx, l, func(string) error { return x.regroup(ctx, l, n) })
}

// regroup is Regroup with the lock held.
func (x *Index) regroup(ctx context.Context, l Loc, n int) error {
	n = Fixed(n)
	y, err := x.Groups(ctx, l)
	if err != nil {
		return err
	}
	from, err := x.rdb.Get(ctx, x.fromKey(l)).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("regroup: %w", err)
	}
	if y.N == n && from == 0 {
		return nil
	}
	if from != 0 && y.N != n {
		// A regroup to another layout was cut short: finish it first, so
		// that this one leaves a single layout. Its users sit in groups of
		// both; a removal reaches only the groups of the layout being left
		// and of the new one, so one sitting in the other would come back.
		if err := x.regroup(ctx, l, y.N); err != nil {
			return err
		}
		if y, err = x.Groups(ctx, l); err != nil {
			return err
		}
		from = 0
	}
	// Resuming a regroup cut short: removals keep reaching the groups
	// of the layout it was leaving, where unmoved members still are.
	// Every listed group is scanned again either way.
	from = cmp.Or(from, y.N)
	pipe := x.rdb.TxPipeline()
	pipe.Incr(ctx, x.movesKey(l))
	pipe.Set(ctx, x.fromKey(l), from, 0)
	pipe.Set(ctx, x.layoutKey(l), n, 0)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("regroup: %w", err)
	}
	for _, g := range y.Groups {
		if err := x.moveGroup(ctx, l, g, n); err != nil {
			return err
		}
	}
	if err := x.rdb.Del(ctx, x.fromKey(l)).Err(); err != nil {
		return fmt.Errorf("regroup: %w", err)
	}
	return nil
}

// moveGroup moves the members of group g of l whose group in layout n is
// another, in bounded batches, hashing each ID as registered (a packed one
// decoded).
func (x *Index) moveGroup(ctx context.Context, l Loc, g, n int) error {
	pipe := x.rdb.Pipeline()
	members := pipe.SMembers(ctx, x.memberKey(l, g))
	packed := pipe.Get(ctx, x.packedKey(l, g))
	pipe.Exec(ctx) //nolint:errcheck // each reply is checked below: a missing key is no error
	for _, c := range []redis.Cmder{members, packed} {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("regroup: %w", err)
		}
	}
	var sets, entries []any
	for _, u := range members.Val() {
		if h := Of(u, n); h != g {
			sets = append(sets, h, u)
		}
	}
	err := eachPacked(packed.Val(), func(id, entry string) {
		if h := Of(id, n); h != g {
			entries = append(entries, h, entry)
		}
	})
	if err != nil {
		return x.damaged(ctx, l, fmt.Errorf("regroup: group %d: %w", g, err))
	}
	keys := []string{x.memberKey(l, g), x.packedKey(l, g), x.groupsKey(l), x.movesKey(l)}
	for {
		// The call also unlists g once it is empty, so even a group with
		// nothing to move gets one.
		k := min(len(sets), 2*moveBatch)
		j := min(len(entries), 2*moveBatch-k)
		args := append([]any{x.memberPrefix(l), x.packedPrefix(l), g, k / 2}, sets[:k]...)
		args = append(args, entries[:j]...)
		if err := moveScript.Run(ctx, x.rdb, keys, args...).Err(); err != nil {
			return fmt.Errorf("regroup: %w", err)
		}
		sets, entries = sets[k:], entries[j:]
		if len(sets) == 0 && len(entries) == 0 {
			break
		}
	}
	return nil
}

// EnsureBuilt rebuilds the index of l from the store if it is missing. When
// another process is rebuilding it, EnsureBuilt waits for that rebuild.
func (x *Index) EnsureBuilt(ctx context.Context, l Loc) error {
	for {
		n, err := x.rdb.Exists(ctx, x.builtKey(l), x.layoutKey(l)).Result()
		if err != nil {
			return fmt.Errorf("check index: %w", err)
		}
		if n == 2 {
			return nil
		}
		done, err := x.tryLocked(ctx, l, func(token string) error { return x.rebuild(ctx, l, token) })
		if done || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tryLocked runs f under the location's rebuild lock if it can take it now,
// and reports whether it did.
func (x *Index) tryLocked(ctx context.Context, l Loc, f func(token string) error) (bool, error) {
	token := strconv.FormatInt(time.Now().UnixNano(), 36)
	ttl := cmp.Or(x.lockTTL, lockTTL)
	ok, err := x.rdb.SetNX(ctx, x.lockKey(l), token, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("lock index: %w", err)
	}
	if !ok {
		return false, nil
	}
	stop := make(chan struct{})
	var renewing sync.WaitGroup
	renewing.Go(func() { x.renew(ctx, l, token, ttl, stop) })
	err = f(token)
	close(stop)
	renewing.Wait()
	// Free the lock only if it is still ours: work that lost it (a process
	// stalled past its lifetime) must not free a successor's lock.
	unlockScript.Run(context.WithoutCancel(ctx), x.rdb, []string{x.lockKey(l)}, token)
	return true, err
}

// lockTTL is how long a location's rebuild lock lives unless renewed: its
// holder renews it every quarter of that while its work runs (a rebuild of
// millions of users reads MySQL for minutes), so a holder that died frees
// it within lockTTL.
const lockTTL = 2 * time.Minute

// renew keeps the lock token holds on l alive until stop closes or ctx
// ends, and gives up once the lock is another's.
func (x *Index) renew(ctx context.Context, l Loc, token string, ttl time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(ttl / 4)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
			n, err := renewScript.Run(ctx, x.rdb, []string{x.lockKey(l)}, token, ttl.Milliseconds()).Int()
			if err == nil && n == 0 {
				return
			}
		}
	}
}

var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)

// locked runs f under the location's rebuild lock, waiting for it.
func (x *Index) locked(ctx context.Context, l Loc, f func(token string) error) error {
	for {
		done, err := x.tryLocked(ctx, l, f)
		if done || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// rebuild replaces the index of l with the subscriptions in the store, in
// the layout that fits their number.
func (x *Index) rebuild(ctx context.Context, l Loc, token string) error {
	users, fixed, err := store.LocationAudience(ctx, x.db, l.Reminder, l.Location)
	if err != nil {
		return fmt.Errorf("rebuild index: %w", err)
	}
	n := Fit(int(users), x.Target(), 0)
	if fixed > 0 {
		n = Fixed(fixed)
	}
	if err := x.drop(ctx, l, true); err != nil {
		return err
	}
	// The layout goes first: subscriptions committed from now on are
	// written by their API call, those before are read below. It fits the
	// audience already, so the writes below do not grow it.
	pipe := x.rdb.TxPipeline()
	if fixed > 0 {
		pipe.Set(ctx, x.fixedKey(l), fixed, 0)
	}
	pipe.Set(ctx, x.layoutKey(l), n, 0)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("rebuild index: %w", err)
	}
	rows, err := x.db.WithContext(ctx).Model(&store.Subscription{}).
		Select("user_id", "group_no").
		Where("reminder_id = ? AND location_id = ?", l.Reminder, l.Location).
		Rows()
	if err != nil {
		return fmt.Errorf("rebuild index: %w", err)
	}
	defer rows.Close()
	batch := make([]Member, 0, 10000)
	for rows.Next() {
		m := Member{Loc: l}
		if err := rows.Scan(&m.UserID, &m.Bucket); err != nil {
			return fmt.Errorf("rebuild index: %w", err)
		}
		batch = append(batch, m)
		if len(batch) == cap(batch) {
			if _, err := x.apply(ctx, batch, nil); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("rebuild index: %w", err)
	}
	if _, err := x.apply(ctx, batch, nil); err != nil {
		return err
	}
	// Mark it built only while the lock is still ours: a rebuild that
	// outlived its lock may overlap another one that is half done.
	ok, err := markBuiltScript.Run(ctx, x.rdb, []string{x.lockKey(l), x.builtKey(l)}, token, time.Now().UTC().Format(time.RFC3339)).Int()
	if err != nil {
		return fmt.Errorf("rebuild index: %w", err)
	}
	if ok == 0 {
		return fmt.Errorf("rebuild index: the rebuild lock expired before the rebuild ended")
	}
	return nil
}

var markBuiltScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1`)

// Drop deletes the index of l, sets and packed strings, including the built
// marker and the layout.
func (x *Index) Drop(ctx context.Context, l Loc) error { return x.drop(ctx, l, false) }

// drop deletes the index of l. A rebuild's drop (moving) keeps the
// location's count of moves and counts itself in it, in one step with the
// deletion of the built marker (before any other key): a read that ran
// across the deletion sees the count change, and one after it finds the
// index not built until the rebuild marks it so.
func (x *Index) drop(ctx context.Context, l Loc, moving bool) error {
	groups, err := x.rdb.SMembers(ctx, x.groupsKey(l)).Result()
	if err != nil {
		return fmt.Errorf("drop index: %w", err)
	}
	keys := []string{x.builtKey(l), x.layoutKey(l), x.fromKey(l), x.groupsKey(l), x.fixedKey(l)}
	if !moving {
		keys = append(keys, x.movesKey(l))
	}
	for _, s := range groups {
		g, _ := strconv.Atoi(s)
		keys = append(keys, x.memberKey(l, g), x.packedKey(l, g))
	}
	if moving {
		pipe := x.rdb.TxPipeline()
		pipe.Incr(ctx, x.movesKey(l))
		pipe.Unlink(ctx, x.builtKey(l))
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("drop index: %w", err)
		}
		keys = keys[1:] // the built marker, gone
	}
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		if err := x.rdb.Unlink(ctx, keys[:n]...).Err(); err != nil {
			return fmt.Errorf("drop index: %w", err)
		}
		keys = keys[n:]
	}
	return nil
}

// MarkBuilt records that the indexes of locs are complete without reading
// the store: for (reminder, location) pairs that have no subscriptions yet.
// They start with n groups (see Fixed; 1 for a reminder sized per
// location, whose layout then grows with its writes, see Apply). An index
// already marked is left as it is.
func (x *Index) MarkBuilt(ctx context.Context, n int, locs ...Loc) error {
	if len(locs) == 0 {
		return nil
	}
	now := time.Now().UTC().Format(time.RFC3339)
	pipe := x.rdb.Pipeline()
	for _, l := range locs {
		if n > 0 {
			pipe.SetNX(ctx, x.fixedKey(l), n, 0)
		}
		pipe.SetNX(ctx, x.layoutKey(l), Fixed(n), 0)
		pipe.SetNX(ctx, x.builtKey(l), now, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("mark index built: %w", err)
	}
	return nil
}
