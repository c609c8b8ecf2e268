// Package grouping splits a reminder's subscribers at a location into N
// groups and keeps the membership index workers read at fire time.
//
// # Hash
//
// A user belongs to group XXH64(user_id) mod N, where XXH64 is the 64-bit
// xxHash of the user ID's bytes with seed 0 (https://xxhash.com, stable
// across versions and languages) and N is the reminder's group count. The
// group does not depend on the day or the fire time, so membership is stored
// once and read at every fire.
//
// # Index
//
// For each (reminder, location) Redis holds, per non-empty group, a set of
// its integer-like user IDs and a packed string of the others (see
// member.go), a set of the non-empty group numbers, and a "built" marker.
// All keys of a location share one hash tag, so they live in one Redis
// Cluster slot and can be read in one pipelined round trip. With groups of
// at most 512 integer-like IDs Redis stores a set as an intset, about 5 bytes
// a member (larger sets cost about 50 bytes a member); a UUID costs 17 bytes
// in the packed string, any other ID its length and one byte.
//
// MySQL is the source of truth. The index is written after each committed
// subscription change and is rebuilt from MySQL whenever the built marker is
// missing (first use, Redis restart, eviction). A rebuild races with
// subscription changes committed while it runs: a user removed during a
// rebuild may stay in the index until the next rebuild.
package grouping

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/store"
)

// DefaultGroups is the group count of a reminder that does not set one. With
// it, a location keeps Redis's compact set encoding up to about 100,000
// subscribers (at most 400 a group under Redis's default
// set-max-intset-entries of 512); reminders with more subscribers per
// location should set groups to about subscribers/400, or, with
// set-max-intset-entries raised to 4096, subscribers/3200, which cuts the
// per-group cost of a fire eightfold.
const DefaultGroups = 256

// MaxGroups bounds a reminder's group count.
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

// Index is the Redis membership index, rebuilt from the store when missing.
type Index struct {
	rdb    redis.UniversalClient
	db     *gorm.DB
	prefix string
}

// NewIndex returns an index whose keys start with prefix (for example
// "chime:").
func NewIndex(rdb redis.UniversalClient, db *gorm.DB, prefix string) *Index {
	return &Index{rdb: rdb, db: db, prefix: prefix}
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
func (x *Index) memberKey(l Loc, g int) string {
	return x.base(l) + "g:" + strconv.Itoa(g)
}
func (x *Index) packedKey(l Loc, g int) string {
	return x.base(l) + "p:" + strconv.Itoa(g)
}

// Member is one user's place in the index.
type Member struct {
	Loc
	Group  int
	UserID string
}

// Apply adds and removes members in one pipelined round trip. Callers apply
// changes after they are committed to the store, and add only members that
// are new to their group: an integer-like ID added twice is kept once, any
// other is stored twice (and read once) until the next rebuild.
func (x *Index) Apply(ctx context.Context, add, remove []Member) error {
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	type group struct {
		Loc
		Group int
	}
	pipe := x.rdb.Pipeline()
	packedOut := map[group][]any{}
	var order []group
	for _, m := range remove {
		// An index written before the packed strings keeps any ID in the
		// set: remove it from there too.
		pipe.SRem(ctx, x.memberKey(m.Loc, m.Group), m.UserID)
		if !integerLike(m.UserID) {
			g := group{m.Loc, m.Group}
			if _, ok := packedOut[g]; !ok {
				order = append(order, g)
			}
			packedOut[g] = append(packedOut[g], string(appendPacked(nil, m.UserID)))
		}
	}
	for _, g := range order {
		removeScript.Eval(ctx, pipe, []string{x.packedKey(g.Loc, g.Group)}, packedOut[g]...)
	}
	ints := map[group][]any{}
	packedIn := map[group][]byte{}
	order = order[:0]
	for _, m := range add {
		g := group{m.Loc, m.Group}
		_, hasInts := ints[g]
		_, hasPacked := packedIn[g]
		if !hasInts && !hasPacked {
			order = append(order, g)
			pipe.SAdd(ctx, x.groupsKey(m.Loc), m.Group)
		}
		if integerLike(m.UserID) {
			ints[g] = append(ints[g], m.UserID)
		} else {
			packedIn[g] = appendPacked(packedIn[g], m.UserID)
		}
	}
	for _, g := range order {
		if v := ints[g]; len(v) > 0 {
			pipe.SAdd(ctx, x.memberKey(g.Loc, g.Group), v...)
		}
		if v := packedIn[g]; len(v) > 0 {
			appendScript.Eval(ctx, pipe, []string{x.packedKey(g.Loc, g.Group)}, v)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		// Part of the change may be missing: make the next reader rebuild
		// these locations from the store.
		x.invalidate(context.WithoutCancel(ctx), add, remove)
		return fmt.Errorf("update membership index: %w", err)
	}
	return nil
}

func (x *Index) invalidate(ctx context.Context, lists ...[]Member) {
	seen := map[Loc]bool{}
	for _, l := range lists {
		for _, m := range l {
			if !seen[m.Loc] {
				seen[m.Loc] = true
				x.rdb.Del(ctx, x.builtKey(m.Loc))
			}
		}
	}
}

// Members returns the user IDs of group g in one round trip, or ErrNotBuilt.
// They are sorted in byte order (the order checkpoints compare in), each
// once.
func (x *Index) Members(ctx context.Context, l Loc, g int) ([]string, error) {
	pipe := x.rdb.Pipeline()
	built := pipe.Exists(ctx, x.builtKey(l))
	members := pipe.SMembers(ctx, x.memberKey(l, g))
	packed := pipe.Get(ctx, x.packedKey(l, g))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read group %d: %w", g, err)
	}
	if built.Val() == 0 {
		return nil, ErrNotBuilt
	}
	out, err := unpack(members.Val(), packed.Val())
	if err != nil {
		// A damaged string is not guessed at: the next read rebuilds the
		// location from the store.
		x.rdb.Del(context.WithoutCancel(ctx), x.builtKey(l))
		return nil, fmt.Errorf("read group %d: %w", g, err)
	}
	return sortedUnique(out), nil
}

// Groups returns the numbers of the groups that have had members since the
// last rebuild, or ErrNotBuilt. A group emptied by unsubscriptions stays
// listed until the next rebuild; delivering it costs one empty read.
func (x *Index) Groups(ctx context.Context, l Loc) ([]int, error) {
	pipe := x.rdb.Pipeline()
	built := pipe.Exists(ctx, x.builtKey(l))
	groups := pipe.SMembers(ctx, x.groupsKey(l))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read groups: %w", err)
	}
	if built.Val() == 0 {
		return nil, ErrNotBuilt
	}
	out := make([]int, 0, len(groups.Val()))
	for _, s := range groups.Val() {
		g, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("read groups: bad group %q", s)
		}
		out = append(out, g)
	}
	return out, nil
}

// EnsureBuilt rebuilds the index of l from the store if it is missing. When
// another process is rebuilding it, EnsureBuilt waits for that rebuild.
func (x *Index) EnsureBuilt(ctx context.Context, l Loc) error {
	for {
		n, err := x.rdb.Exists(ctx, x.builtKey(l)).Result()
		if err != nil {
			return fmt.Errorf("check index: %w", err)
		}
		if n == 1 {
			return nil
		}
		token := strconv.FormatInt(time.Now().UnixNano(), 36)
		ok, err := x.rdb.SetNX(ctx, x.lockKey(l), token, 2*time.Minute).Result()
		if err != nil {
			return fmt.Errorf("lock index rebuild: %w", err)
		}
		if ok {
			err := x.rebuild(ctx, l, token)
			// Free the lock only if it is still ours: a rebuild slower than
			// the lock's lifetime must not free a successor's lock.
			unlockScript.Run(context.WithoutCancel(ctx), x.rdb, []string{x.lockKey(l)}, token)
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

// rebuild replaces the index of l with the subscriptions in the store.
func (x *Index) rebuild(ctx context.Context, l Loc, token string) error {
	if err := x.Drop(ctx, l); err != nil {
		return err
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
		if err := rows.Scan(&m.UserID, &m.Group); err != nil {
			return fmt.Errorf("rebuild index: %w", err)
		}
		batch = append(batch, m)
		if len(batch) == cap(batch) {
			if err := x.Apply(ctx, batch, nil); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("rebuild index: %w", err)
	}
	if err := x.Apply(ctx, batch, nil); err != nil {
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

// Drop deletes the index of l, including the built marker.
func (x *Index) Drop(ctx context.Context, l Loc) error {
	groups, err := x.rdb.SMembers(ctx, x.groupsKey(l)).Result()
	if err != nil {
		return fmt.Errorf("drop index: %w", err)
	}
	keys := []string{x.builtKey(l), x.groupsKey(l)}
	for _, s := range groups {
		g, _ := strconv.Atoi(s)
		keys = append(keys, x.memberKey(l, g), x.packedKey(l, g))
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
// An index already marked is left as it is.
func (x *Index) MarkBuilt(ctx context.Context, locs ...Loc) error {
	if len(locs) == 0 {
		return nil
	}
	now := time.Now().UTC().Format(time.RFC3339)
	pipe := x.rdb.Pipeline()
	for _, l := range locs {
		pipe.SetNX(ctx, x.builtKey(l), now, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("mark index built: %w", err)
	}
	return nil
}
