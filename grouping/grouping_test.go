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
		require.ElementsMatch(t, users, got, "group %d", g)
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
	// For comparison only: what leaving the compact encoding costs.
	for _, tc := range []struct {
		name string
		id   func(i int) string
	}{
		{"400 non-integer IDs", func(i int) string { return "user-" + strconv.Itoa(i) }},
		{"600 integers", func(i int) string { return strconv.Itoa(1_000_000 + i) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, x := newIndex(t)
			ctx := context.Background()
			n, _ := strconv.Atoi(strings.Fields(tc.name)[0])
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
