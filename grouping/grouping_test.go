package grouping_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/store"
)

// The expected groups follow XXH64 with seed 0 of the user ID's bytes, mod n.
// They were computed once and are pinned as a regression guard: a change of
// hash, seed or reduction would move every subscriber to another group. The
// hashes of "", "a" and "abc" are the published XXH64 test vectors
// (ef46db3751d8e999, d24ec4f1a98c6e5b, 44bc2cf5ad770999).
func TestOfPinned(t *testing.T) {
	tests := []struct {
		id   string
		n    int
		want int
	}{
		{"", 256, 0xef46db3751d8e999 % 256},
		{"", 1000, 0xef46db3751d8e999 % 1000},
		{"a", 256, 0xd24ec4f1a98c6e5b % 256},
		{"abc", 1000, 0x44bc2cf5ad770999 % 1000},
		{"abc", 256, 153},
		{"1", 256, 212}, // XXH64("1") = b7b41276360564d4
		{"42", 64, 57},  // XXH64("42") = 6de6f5d076d742b9
		{"42", 7, 3},    // n need not be a power of two
		{"user-42", 256, 129},
		{"alice", 1000, 289},
		{"1000000", 256, 33},
		{"1000000", 65536, 0xe421},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q/%d", tc.id, tc.n), func(t *testing.T) {
			require.Equal(t, tc.want, grouping.Of(tc.id, tc.n))
			// Stable: the same answer every call.
			require.Equal(t, tc.want, grouping.Of(tc.id, tc.n))
		})
	}
}

func TestOfFewGroups(t *testing.T) {
	for _, n := range []int{1, 0, -1, -256} {
		for _, id := range []string{"", "a", "42", "user-42"} {
			require.Zero(t, grouping.Of(id, n), "Of(%q, %d)", id, n)
		}
	}
}

func TestOfInRange(t *testing.T) {
	for _, n := range []int{2, 3, 7, 64, 256, 1000, grouping.MaxGroups} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			seen := map[int]bool{}
			for i := range 20000 {
				g := grouping.Of("user-"+strconv.Itoa(i), n)
				require.GreaterOrEqual(t, g, 0)
				require.Less(t, g, n)
				seen[g] = true
			}
			if n <= 64 {
				require.Len(t, seen, n, "every group gets someone")
			}
		})
	}
}

func TestOfUniform(t *testing.T) {
	const ids, n = 100_000, 64
	for _, tc := range []struct {
		name string
		id   func(i int) string
	}{
		{"sequential integers", func(i int) string { return strconv.Itoa(i) }},
		{"large integers", func(i int) string { return strconv.Itoa(7_000_000_000 + i*13) }},
		{"prefixed", func(i int) string { return "user-" + strconv.Itoa(i) }},
		{"uuid-like", func(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i*2654435761, i) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			counts := make([]int, n)
			for i := range ids {
				counts[grouping.Of(tc.id(i), n)]++
			}
			mean := float64(ids) / n
			chi2 := 0.0
			for g, c := range counts {
				d := float64(c) - mean
				chi2 += d * d / mean
				require.InDelta(t, mean, c, 0.15*mean, "group %d has %d members, mean %.1f", g, c, mean)
			}
			// 63 degrees of freedom: the 99.99th percentile is about 120.
			t.Logf("chi-square over %d groups: %.1f", n, chi2)
			require.Less(t, chi2, 150.0)
		})
	}
}

var (
	locA = grouping.Loc{Reminder: 11, Location: 3}
	locB = grouping.Loc{Reminder: 11, Location: 4} // same reminder, another location
	locC = grouping.Loc{Reminder: 12, Location: 3} // another reminder, same location
)

// testGroupSize keeps the tests' layouts of a few groups with few users.
const testGroupSize = 64

func newIndex(t *testing.T) (*testenv.Env, *grouping.Index) {
	t.Helper()
	env := testenv.New(t)
	x := grouping.NewIndex(env.Redis, env.DB, env.Prefix)
	x.GroupSize = testGroupSize
	return env, x
}

// subscribe inserts subscriptions of users to l with their buckets and
// returns the membership expected under the layout that fits them.
func subscribe(t *testing.T, env *testenv.Env, l grouping.Loc, users []string) map[int][]string {
	t.Helper()
	rows := make([]store.Subscription, 0, len(users))
	for _, u := range users {
		rows = append(rows, store.Subscription{ReminderID: l.Reminder, LocationID: l.Location, UserID: u, GroupNo: grouping.Bucket(u)})
	}
	require.NoError(t, env.DB.CreateInBatches(rows, 500).Error)
	return layout(users, grouping.Fit(len(users), testGroupSize, 0))
}

// layout returns the membership of users among n groups.
func layout(users []string, n int) map[int][]string {
	want := map[int][]string{}
	for _, u := range users {
		g := grouping.Of(u, n)
		want[g] = append(want[g], u)
	}
	return want
}

func userIDs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// requireIndex checks that the index of l holds exactly want.
func requireIndex(t *testing.T, x *grouping.Index, l grouping.Loc, want map[int][]string) {
	t.Helper()
	ctx := context.Background()
	y, err := x.Groups(ctx, l)
	require.NoError(t, err)
	var nonEmpty []int
	for g, users := range want {
		if len(users) > 0 {
			nonEmpty = append(nonEmpty, g)
		}
	}
	slices.Sort(nonEmpty)
	require.Equal(t, nonEmpty, y.Groups)
	for g, users := range want {
		got, err := x.Members(ctx, l, y.N, g)
		require.NoError(t, err)
		require.Equal(t, slices.Sorted(slices.Values(users)), got, "group %d: its users, sorted, each once", g)
	}
}

func TestIndexNotBuilt(t *testing.T) {
	env, x := newIndex(t)
	ctx := context.Background()
	subscribe(t, env, locA, userIDs("u", 20))

	_, err := x.Members(ctx, locA, 1, 0)
	require.ErrorIs(t, err, grouping.ErrNotBuilt)
	_, err = x.Groups(ctx, locA)
	require.ErrorIs(t, err, grouping.ErrNotBuilt)

	// Changes applied to an index that was never built do not make it built.
	require.NoError(t, x.Apply(ctx, []grouping.Member{{Loc: locA, Bucket: 1, UserID: "u1"}}, nil))
	_, err = x.Members(ctx, locA, 1, 0)
	require.ErrorIs(t, err, grouping.ErrNotBuilt)

	// MarkBuilt makes an empty location readable without reading the store.
	require.NoError(t, x.MarkBuilt(ctx, 1, locB))
	m, err := x.Members(ctx, locB, 1, 0)
	require.NoError(t, err)
	require.Empty(t, m)
	gs, err := x.Groups(ctx, locB)
	require.NoError(t, err)
	require.Equal(t, 1, gs.N)
	require.Empty(t, gs.Groups)
}

func TestIndexEnsureBuiltFromStore(t *testing.T) {
	env, x := newIndex(t)
	ctx := context.Background()
	want := subscribe(t, env, locA, userIDs("", 1000))
	wantB := subscribe(t, env, locB, userIDs("b", 30))
	subscribe(t, env, locC, userIDs("c", 30))
	require.Len(t, want, 16, "1,000 users in groups of at most 64 on average")
	require.Len(t, wantB, 1)

	require.NoError(t, x.EnsureBuilt(ctx, locA))
	requireIndex(t, x, locA, want)
	// A group without members reads as empty.
	m, err := x.Members(ctx, locA, 1024, 999)
	require.NoError(t, err)
	require.Empty(t, m)
	// Other locations are not built by it.
	_, err = x.Members(ctx, locB, 1, 0)
	require.ErrorIs(t, err, grouping.ErrNotBuilt)
	require.NoError(t, x.EnsureBuilt(ctx, locB))
	requireIndex(t, x, locB, wantB)

	// Once built, EnsureBuilt does not read the store again: a row inserted
	// behind the index's back stays invisible.
	extra := store.Subscription{ReminderID: locA.Reminder, LocationID: locA.Location, UserID: "sneaky", GroupNo: grouping.Bucket("sneaky")}
	require.NoError(t, env.DB.Create(&extra).Error)
	require.NoError(t, x.EnsureBuilt(ctx, locA))
	requireIndex(t, x, locA, want)

	// The store changes while Redis loses everything; the rebuild reads the
	// store as it is now.
	gone := want[3][0]
	require.NoError(t, env.DB.Where("reminder_id = ? AND user_id = ?", locA.Reminder, gone).Delete(&store.Subscription{}).Error)
	want[3] = slices.DeleteFunc(slices.Clone(want[3]), func(u string) bool { return u == gone })
	want[grouping.Of("sneaky", 16)] = append(want[grouping.Of("sneaky", 16)], "sneaky")
	deleteKeys(t, env.Redis, env.Prefix)

	_, err = x.Members(ctx, locA, 16, 3)
	require.ErrorIs(t, err, grouping.ErrNotBuilt)
	_, err = x.Groups(ctx, locA)
	require.ErrorIs(t, err, grouping.ErrNotBuilt)
	require.NoError(t, x.EnsureBuilt(ctx, locA))
	requireIndex(t, x, locA, want)
}

func deleteKeys(t *testing.T, rdb *redis.Client, prefix string) {
	t.Helper()
	ctx := context.Background()
	keys, err := scanKeys(rdb, prefix+"*")
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	require.NoError(t, rdb.Del(ctx, keys...).Err())
}

func scanKeys(rdb *redis.Client, pattern string) ([]string, error) {
	ctx := context.Background()
	var keys []string
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	return keys, iter.Err()
}

// rebuildCounter counts the writes of built markers (one per rebuild).
type rebuildCounter struct{ n atomic.Int32 }

func (c *rebuildCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *rebuildCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (c *rebuildCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		// A rebuild marks the index built with a script that checks the
		// rebuild lock; MarkBuilt would use SET.
		err := next(ctx, cmd)
		if err != nil {
			return err // for example NOSCRIPT, retried as EVAL
		}
		switch cmd.Name() {
		case "set", "eval", "evalsha":
			for _, a := range cmd.Args()[1:] {
				if k, _ := a.(string); strings.HasSuffix(k, ":built") {
					c.n.Add(1)
					break
				}
			}
		}
		return nil
	}
}

func TestIndexEnsureBuiltConcurrent(t *testing.T) {
	env, _ := newIndex(t)
	want := subscribe(t, env, locA, userIDs("", 5000))

	opt, err := redis.ParseURL(env.RedisURL)
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	var rebuilds rebuildCounter
	rdb.AddHook(&rebuilds)

	const workers = 8
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, workers)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One index per goroutine, as in separate processes.
			x := grouping.NewIndex(rdb, env.DB, env.Prefix)
			x.GroupSize = testGroupSize
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			<-start
			errs[i] = x.EnsureBuilt(ctx, locA)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "goroutine %d", i)
	}
	require.EqualValues(t, 1, rebuilds.n.Load(), "exactly one rebuild")
	requireIndex(t, grouping.NewIndex(env.Redis, env.DB, env.Prefix), locA, want) // reads need no GroupSize
	// The rebuild lock is not left behind.
	keys, err := scanKeys(env.Redis, env.Prefix+"*lock*")
	require.NoError(t, err)
	require.Empty(t, keys)
}

func TestIndexApply(t *testing.T) {
	_, x := newIndex(t)
	ctx := context.Background()
	require.NoError(t, x.MarkBuilt(ctx, 1, locA))
	require.NoError(t, x.MarkBuilt(ctx, 1, locB))
	require.NoError(t, x.Regroup(ctx, locA, 8))

	// A member goes to group bucket mod the location's layout: 8 groups at
	// locA, 1 at locB.
	require.NoError(t, x.Apply(ctx, nil, nil))
	require.NoError(t, x.Apply(ctx, []grouping.Member{
		{Loc: locA, Bucket: 1, UserID: "10"},
		{Loc: locA, Bucket: 9, UserID: "11"},
		{Loc: locA, Bucket: 13, UserID: "50"},
		{Loc: locB, Bucket: 1, UserID: "b"},
		{Loc: locA, Bucket: 1, UserID: "10"}, // twice is once
	}, nil))
	requireIndex(t, x, locA, map[int][]string{1: {"10", "11"}, 5: {"50"}})
	requireIndex(t, x, locB, map[int][]string{0: {"b"}})

	// Removes and adds in one call; group 5 loses its only member and is
	// no longer listed.
	require.NoError(t, x.Apply(ctx,
		[]grouping.Member{{Loc: locA, Bucket: 7, UserID: "70"}},
		[]grouping.Member{{Loc: locA, Bucket: 9, UserID: "11"}, {Loc: locA, Bucket: 5, UserID: "50"}, {Loc: locA, Bucket: 9, UserID: "nobody"}},
	))
	requireIndex(t, x, locA, map[int][]string{1: {"10"}, 7: {"70"}})
	requireIndex(t, x, locB, map[int][]string{0: {"b"}})
}

func TestIndexDrop(t *testing.T) {
	env, x := newIndex(t)
	ctx := context.Background()
	subscribe(t, env, locA, userIDs("a", 100))
	wantB := subscribe(t, env, locB, userIDs("b", 100))
	require.NoError(t, x.EnsureBuilt(ctx, locA))
	require.NoError(t, x.EnsureBuilt(ctx, locB))

	require.NoError(t, x.Drop(ctx, locA))
	_, err := x.Members(ctx, locA, 1, 0)
	require.ErrorIs(t, err, grouping.ErrNotBuilt)
	_, err = x.Groups(ctx, locA)
	require.ErrorIs(t, err, grouping.ErrNotBuilt)
	keys, err := scanKeys(env.Redis, env.Prefix+"*")
	require.NoError(t, err)
	for _, k := range keys {
		require.NotContains(t, k, "{11:3}", "key %s of the dropped location is left", k)
	}
	requireIndex(t, x, locB, wantB)

	// Dropping what is not there is fine.
	require.NoError(t, x.Drop(ctx, locA))
	require.NoError(t, x.Drop(ctx, locC))
}

// memberKey finds the one member set of l's index.
func memberKey(t *testing.T, env *testenv.Env) string {
	t.Helper()
	keys, err := scanKeys(env.Redis, env.Prefix+"*:g:*")
	require.NoError(t, err)
	require.Len(t, keys, 1)
	return keys[0]
}

// intsetLimit is the set-max-intset-entries of the tests' Redis.
func intsetLimit(t *testing.T, env *testenv.Env) int {
	t.Helper()
	m, err := env.Redis.ConfigGet(context.Background(), "set-max-intset-entries").Result()
	require.NoError(t, err)
	n, err := strconv.Atoi(m["set-max-intset-entries"])
	require.NoError(t, err)
	return n
}

func TestIndexCompactEncoding(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members int
		id      func(i int) string
	}{
		{"1 small integer", 1, func(i int) string { return strconv.Itoa(i) }},
		{"400 integers", 400, func(i int) string { return strconv.Itoa(1_000_000 + i*7919) }},
		{"400 large integers", 400, func(i int) string { return strconv.Itoa(90_000_000_000 + i*7919) }},
		{"512 integers", 512, func(i int) string { return strconv.Itoa(1_000_000 + i) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, x := newIndex(t)
			ctx := context.Background()
			add := make([]grouping.Member, tc.members)
			for i := range add {
				add[i] = grouping.Member{Loc: locA, Bucket: 0, UserID: tc.id(i)}
			}
			require.NoError(t, x.MarkBuilt(ctx, 1, locA))
			require.NoError(t, x.Apply(ctx, add, nil))
			key := memberKey(t, env)
			require.EqualValues(t, tc.members, env.Redis.SCard(ctx, key).Val())
			enc, err := env.Redis.ObjectEncoding(ctx, key).Result()
			require.NoError(t, err)
			require.Equal(t, "intset", enc)
			usage, err := env.Redis.MemoryUsage(ctx, key).Result()
			require.NoError(t, err)
			t.Logf("%d members: %s, %d bytes, %.1f bytes a member", tc.members, enc, usage, float64(usage)/float64(tc.members))
		})
	}
	// For comparison only: what leaving the compact encoding costs, past
	// this Redis's limit. (Non-integer IDs are not in the set at all:
	// TestIndexCompactStringIDs.)
	for _, tc := range []struct {
		name string
		id   func(i int) string
	}{
		{"integers past the limit", func(i int) string { return strconv.Itoa(1_000_000 + i) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, x := newIndex(t)
			ctx := context.Background()
			n := intsetLimit(t, env) + 88
			add := make([]grouping.Member, n)
			for i := range add {
				add[i] = grouping.Member{Loc: locA, Bucket: 0, UserID: tc.id(i)}
			}
			require.NoError(t, x.MarkBuilt(ctx, 1, locA))
			require.NoError(t, x.Apply(ctx, add, nil))
			key := memberKey(t, env)
			enc, err := env.Redis.ObjectEncoding(ctx, key).Result()
			require.NoError(t, err)
			require.NotEqual(t, "intset", enc)
			usage, err := env.Redis.MemoryUsage(ctx, key).Result()
			require.NoError(t, err)
			t.Logf("%d members: %s, %d bytes, %.1f bytes a member", n, enc, usage, float64(usage)/float64(n))
		})
	}
}

func uuidLike(i int) string {
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(i*2654435761), i&0xffff, i&0xfff, (i*7)&0xfff, i*104729)
}

// Compact string IDs: UUIDs (both cases), arbitrary strings the API allows
// and integers share one group. Injected: adds, a repeated add, removals
// of each kind and a rebuild from the store. Checked: each read gives back
// the exact IDs, sorted and once each, and a group of 400 UUIDs costs at
// most 24 bytes a member by MEMORY USAGE.
func TestIndexCompactStringIDs(t *testing.T) {
	env, x := newIndex(t)
	ctx := context.Background()
	require.NoError(t, x.MarkBuilt(ctx, 1, locA))
	ids := []string{"42", "-7", "007", "alice", "0F8FAD5B-D9CB-469F-A165-70867728950E", "0f8fad5b-d9cb-469f-a165-70867728950e",
		"Ünïcødé-✓", "😀", strings.Repeat("z", 191), "0f8fad5b-D9CB-469f-a165-70867728950e"}
	for i := range 400 {
		ids = append(ids, uuidLike(i))
	}
	add := make([]grouping.Member, len(ids))
	for i, id := range ids {
		add[i] = grouping.Member{Loc: locA, Bucket: 3, UserID: id}
	}
	require.NoError(t, x.Apply(ctx, add[:200], nil))
	require.NoError(t, x.Apply(ctx, add[200:], nil))
	want := slices.Sorted(slices.Values(ids))
	got, err := x.Members(ctx, locA, 1, 0)
	require.NoError(t, err)
	require.Equal(t, want, got, "every ID back, sorted")

	// A user added twice (two requests racing) is read once.
	require.NoError(t, x.Apply(ctx, []grouping.Member{add[4], add[20], add[1]}, nil))
	got, err = x.Members(ctx, locA, 1, 0)
	require.NoError(t, err)
	require.Equal(t, want, got)

	// Removals of each kind, including one added twice and one not there.
	gone := []string{"alice", "-7", uuidLike(16), "0F8FAD5B-D9CB-469F-A165-70867728950E", uuidLike(10), "nobody", "😀"}
	var remove []grouping.Member
	for _, id := range gone {
		remove = append(remove, grouping.Member{Loc: locA, Bucket: 3, UserID: id})
	}
	require.NoError(t, x.Apply(ctx, nil, remove))
	want = slices.DeleteFunc(want, func(id string) bool { return slices.Contains(gone, id) })
	got, err = x.Members(ctx, locA, 1, 0)
	require.NoError(t, err)
	require.Equal(t, want, got)

	// Rebuilt from the store, the group reads the same.
	wantB := subscribe(t, env, locB, want)
	require.NoError(t, x.EnsureBuilt(ctx, locB))
	requireIndex(t, x, locB, wantB)
	require.NoError(t, x.Drop(ctx, locB))
	keys, err := scanKeys(env.Redis, env.Prefix+"*{11:4}*")
	require.NoError(t, err)
	require.Empty(t, keys, "drop leaves no packed string behind")

	// Memory: 400 UUIDs alone in a group.
	require.NoError(t, x.MarkBuilt(ctx, 1, locC))
	uuids := make([]grouping.Member, 400)
	for i := range uuids {
		uuids[i] = grouping.Member{Loc: locC, Bucket: 0, UserID: uuidLike(1000 + i)}
	}
	require.NoError(t, x.Apply(ctx, uuids, nil))
	keys, err = scanKeys(env.Redis, env.Prefix+"*{12:3}:[gp]:*")
	require.NoError(t, err)
	var usage int64
	for _, k := range keys {
		usage += env.Redis.MemoryUsage(ctx, k, 0).Val()
	}
	t.Logf("400 UUIDs: %d bytes, %.1f bytes a member", usage, float64(usage)/400)
	require.LessOrEqual(t, float64(usage)/400, 24.0)
}

// An index written before the packed strings holds raw string IDs in its
// sets. Injected: such a set, then removals. Checked: its members are read
// and removed as before.
func TestIndexReadsRawStringSets(t *testing.T) {
	env, x := newIndex(t)
	ctx := context.Background()
	require.NoError(t, x.MarkBuilt(ctx, 1, locA))
	require.NoError(t, x.Apply(ctx, []grouping.Member{{Loc: locA, Bucket: 0, UserID: "12"}, {Loc: locA, Bucket: 0, UserID: "carol"}}, nil))
	key := memberKey(t, env)
	require.NoError(t, env.Redis.SAdd(ctx, key, "bob", uuidLike(1)).Err())
	got, err := x.Members(ctx, locA, 1, 0)
	require.NoError(t, err)
	require.Equal(t, slices.Sorted(slices.Values([]string{"12", "carol", "bob", uuidLike(1)})), got)
	require.NoError(t, x.Apply(ctx, nil, []grouping.Member{{Loc: locA, Bucket: 0, UserID: "bob"}, {Loc: locA, Bucket: 0, UserID: uuidLike(1)}, {Loc: locA, Bucket: 0, UserID: "carol"}}))
	got, err = x.Members(ctx, locA, 1, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"12"}, got)
}

// BenchmarkIndexMemory reports the Redis bytes a member of a 400-member
// group costs (MEMORY USAGE of its keys, SAMPLES 0) by the form of the IDs.
// It asserts nothing: go test -run '^$' -bench IndexMemory ./grouping/
func BenchmarkIndexMemory(b *testing.B) {
	for _, tc := range []struct {
		name string
		id   func(i int) string
	}{
		{"integers", func(i int) string { return strconv.Itoa(1_000_000 + i*7919) }},
		{"uuids", uuidLike},
		{"strings", func(i int) string { return "user-" + strconv.Itoa(i) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			env := testenv.New(b)
			x := grouping.NewIndex(env.Redis, env.DB, env.Prefix)
			ctx := context.Background()
			var perMember float64
			for n := range b.N {
				l := grouping.Loc{Reminder: 1, Location: int64(n)}
				if err := x.MarkBuilt(ctx, 1, l); err != nil {
					b.Fatal(err)
				}
				add := make([]grouping.Member, 400)
				for i := range add {
					add[i] = grouping.Member{Loc: l, UserID: tc.id(n*400 + i)}
				}
				if err := x.Apply(ctx, add, nil); err != nil {
					b.Fatal(err)
				}
				keys, err := scanKeys(env.Redis, fmt.Sprintf("%s*{1:%d}:[gp]:*", env.Prefix, n))
				if err != nil {
					b.Fatal(err)
				}
				var usage int64
				for _, k := range keys {
					usage += env.Redis.MemoryUsage(ctx, k, 0).Val()
				}
				perMember = float64(usage) / 400
			}
			b.ReportMetric(perMember, "B/member")
		})
	}
}

// Injects: a packed string cut short in Redis. Checks: the read fails
// instead of returning other users, and the next read asks for a rebuild,
// which restores the group from the store.
func TestIndexDamagedPackedString(t *testing.T) {
	env, x := newIndex(t)
	ctx := context.Background()
	users := []string{uuidLike(1), uuidLike(2), "dora"}
	want := subscribe(t, env, locA, users)
	require.NoError(t, x.EnsureBuilt(ctx, locA))
	keys, err := scanKeys(env.Redis, env.Prefix+"*:p:0")
	require.NoError(t, err)
	require.Len(t, keys, 1)
	require.NoError(t, env.Redis.SetRange(ctx, keys[0], 0, "\xc8").Err()) // a header past the longest ID
	_, err = x.Members(ctx, locA, 1, 0)
	require.ErrorContains(t, err, "bad header")
	_, err = x.Members(ctx, locA, 1, 0)
	require.ErrorIs(t, err, grouping.ErrNotBuilt)
	require.NoError(t, x.EnsureBuilt(ctx, locA))
	requireIndex(t, x, locA, want)
}

// The default group size follows the Redis the index writes to. Checked:
// SizeFor keeps a group a quarter over the target (where a write regroups)
// under the limit it is given, with 400 for Redis's default 512 and at most
// 3,200; an index with no GroupSize aims at SizeFor of this Redis's
// set-max-intset-entries, and a group of that target and a quarter more is
// an intset here. Injected: a Redis user that may not run CONFIG (an ACL
// rule), as on hosted Redis that refuse it. Checked: the index falls back
// to DefaultGroupSize and keeps it.
func TestGroupSizeFollowsRedis(t *testing.T) {
	require.Equal(t, 400, grouping.SizeFor(512))
	require.Equal(t, 3200, grouping.SizeFor(4096))
	require.Equal(t, grouping.MaxDefaultGroupSize, grouping.SizeFor(1<<20))
	require.Equal(t, 1, grouping.SizeFor(0))
	for _, limit := range []int{64, 128, 512, 1000, 4096} {
		n := grouping.SizeFor(limit)
		require.Less(t, n+n/4, limit, limit)
	}

	env, x := newIndex(t)
	x.GroupSize = 0
	ctx := context.Background()
	limit := intsetLimit(t, env)
	require.Equal(t, grouping.SizeFor(limit), x.Target())
	n := x.Target() + x.Target()/4
	add := make([]grouping.Member, n)
	for i := range add {
		add[i] = grouping.Member{Loc: locA, Bucket: 0, UserID: strconv.Itoa(7_000_000 + i)}
	}
	require.NoError(t, x.MarkBuilt(ctx, 1, locA))
	require.NoError(t, x.Apply(ctx, add, nil))
	require.Equal(t, "intset", env.Redis.ObjectEncoding(ctx, memberKey(t, env)).Val(), "%d members under a limit of %d", n, limit)

	// A user CONFIG is refused to.
	user := "nocfg-" + strings.TrimSuffix(env.Prefix, ":")
	require.NoError(t, env.Redis.Do(ctx, "ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-config").Err())
	t.Cleanup(func() { env.Redis.Do(context.Background(), "ACL", "DELUSER", user) })
	opt := env.Redis.Options()
	limited := redis.NewClient(&redis.Options{Addr: opt.Addr, DB: opt.DB, Username: user, Password: "pw"})
	defer limited.Close()
	size, err := grouping.RedisSize(ctx, limited)
	var reply redis.Error
	require.ErrorAs(t, err, &reply, "CONFIG is refused")
	require.Equal(t, grouping.DefaultGroupSize, size)
	y := grouping.NewIndex(limited, env.DB, env.Prefix)
	require.Equal(t, grouping.DefaultGroupSize, y.Target())
	require.Equal(t, grouping.DefaultGroupSize, y.Target(), "kept")
}

// The rebuild lock lasts as long as its work. Injected: work under
// locA's lock that runs three times the lock's lifetime (1 s), while
// another caller waits for the lock. Checked: at the end of the work the
// lock still holds its holder's token, the other caller's work ran only
// after it, and the lock is gone once both returned.
func TestRebuildLockRenewedWhileItsWorkRuns(t *testing.T) {
	env, x := newIndex(t)
	grouping.SetLockTTL(x, time.Second)
	ctx := context.Background()
	key := env.Prefix + "idx:{11:3}:lock"
	var mu sync.Mutex
	var order []string
	ran := func(who string) {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, who)
	}
	other := make(chan error, 1)
	err := grouping.Locked(ctx, x, locA, func(token string) error {
		go func() {
			other <- grouping.Locked(ctx, x, locA, func(string) error { ran("other"); return nil })
		}()
		time.Sleep(3 * time.Second)
		held, err := env.Redis.Get(ctx, key).Result()
		if err != nil {
			return err
		}
		if held != token {
			return fmt.Errorf("the lock holds %q, not the holder's %q", held, token)
		}
		ran("holder")
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, <-other)
	require.Equal(t, []string{"holder", "other"}, order)
	n, err := env.Redis.Exists(ctx, key).Result()
	require.NoError(t, err)
	require.Zero(t, n)
}
