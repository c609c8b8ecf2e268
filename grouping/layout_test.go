package grouping_test

import (
	"context"
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

func TestFit(t *testing.T) {
	tests := []struct {
		name                 string
		users, size, current int
		want                 int
	}{
		{"nobody", 0, 400, 0, 1},
		{"one group's worth", 400, 400, 0, 1},
		{"one over", 401, 400, 0, 2},
		{"a city of 250", 250, 400, 0, 1},
		{"250,000 users", 250_000, 400, 0, 1024},
		{"grows from its current layout", 1000, 400, 1, 4},
		{"stays while under size on average", 1600, 400, 4, 4},
		{"stays down to a quarter of size", 400, 400, 4, 4},
		{"shrinks below a quarter", 399, 400, 4, 2},
		{"shrinks by several halvings", 100, 400, 64, 1},
		{"stops halving at a quarter", 1000, 400, 64, 8},
		{"capped", 1 << 30, 400, 0, grouping.MaxGroups},
		{"no size counts as 1", 3, 0, 0, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, grouping.Fit(tc.users, tc.size, tc.current))
		})
	}
}

func TestFixed(t *testing.T) {
	for n, want := range map[int]int{-1: 1, 0: 1, 1: 1, 2: 2, 3: 4, 256: 256, 625: 1024, 65536: 65536, 100_000: 65536} {
		require.Equal(t, want, grouping.Fixed(n), "Fixed(%d)", n)
	}
}

// The bucket a subscription stores is the group among MaxGroups, which the
// store's migration computes on its own (it cannot import grouping).
func TestBucketIsGroupAmongMaxGroups(t *testing.T) {
	for _, u := range userIDs("u", 1000) {
		b := grouping.Bucket(u)
		require.Equal(t, grouping.Of(u, grouping.MaxGroups), b)
		for _, n := range []int{1, 2, 16, 1024} {
			require.Equal(t, grouping.Of(u, n), b%n, "a user's group at n groups is its bucket mod n")
		}
	}
}

// everyone reads every group of l's current layout and checks that each
// user is in exactly one group, the one of its hash, and that the users are
// exactly want.
func everyone(t *testing.T, x *grouping.Index, l grouping.Loc, want []string) grouping.Layout {
	t.Helper()
	ctx := context.Background()
	y, err := x.Groups(ctx, l)
	require.NoError(t, err)
	var got []string
	for _, g := range y.Groups {
		m, err := x.Members(ctx, l, y.N, g)
		require.NoError(t, err)
		for _, u := range m {
			require.Equal(t, g, grouping.Of(u, y.N), "user %s in group %d of %d", u, g, y.N)
		}
		got = append(got, m...)
	}
	require.Equal(t, len(want), y.Users(), "the sizes add up to the audience")
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	require.Equal(t, want, got, "every user once")
	return y
}

// The layout follows the audience: injected are subscriptions added and
// removed through the store and the index as the API does it, with
// regroups between them while more changes keep arriving. Checked: the
// layout grows and shrinks by powers of two to keep groups at most
// GroupSize on average, and every user is in exactly one group, the one of
// its hash.
func TestRegroupGrowsAndShrinksWithoutLoss(t *testing.T) {
	env, x := newIndex(t)
	ctx := context.Background()
	users := userIDs("u", 300)
	subscribe(t, env, locA, users)
	y, err := x.Fit(ctx, locA, 0, true)
	require.NoError(t, err)
	require.Equal(t, 8, y.N, "300 users in groups of at most 64: 8")
	everyone(t, x, locA, users)

	apply := func(add, remove []string) { change(t, env, x, locA, add, remove) }

	// Growth, with subscriptions and unsubscriptions arriving while the
	// groups split.
	grown := userIDs("v", 3000)
	apply(grown[:2000], nil)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 2000; i < 3000; i += 50 {
			apply(grown[i:i+50], users[i/50-40:i/50-39])
		}
	}()
	y, err = x.Fit(ctx, locA, 0, true)
	require.NoError(t, err)
	wg.Wait()
	all := append(slices.Clone(users[20:]), grown...)
	require.Equal(t, 64, y.N, "2,300 users, then 3,280: groups of at most 64 on average")
	y = everyone(t, x, locA, all)

	// A layout already fitting stays as it is.
	y2, err := x.Fit(ctx, locA, 0, true)
	require.NoError(t, err)
	require.Equal(t, y.N, y2.N)

	// Shrinking: most users leave, and the groups merge.
	apply(nil, all[:3000])
	y, err = x.Fit(ctx, locA, 0, true)
	require.NoError(t, err)
	require.Equal(t, 16, y.N, "280 users: halved while the groups average under 16")
	everyone(t, x, locA, all[3000:])

	// A fixed group count wins over the audience.
	y, err = x.Fit(ctx, locA, 3, true)
	require.NoError(t, err)
	require.Equal(t, 4, y.N)
	everyone(t, x, locA, all[3000:])

	// Without regroup the layout is left as it is, whatever the audience.
	apply(userIDs("w", 2000), nil)
	y, err = x.Fit(ctx, locA, 0, false)
	require.NoError(t, err)
	require.Equal(t, 4, y.N)
}

// A fire in flight keeps the layout its tasks were prepared with. Injected:
// the location regroups (and, separately, Redis loses the index and it is
// rebuilt in another layout) after the tasks of layout 8 were made.
// Checked: reading group g of layout 8 gives exactly the users it had when
// the tasks were made, from an index of 32, 2 or 8 groups, whether read
// alone (Members) or with the others in one pipeline (MembersOf, beside a
// location never built, which answers ErrNotBuilt).
func TestMembersKeepTheLayoutOfTheirTask(t *testing.T) {
	env, x := newIndex(t)
	ctx := context.Background()
	users := userIDs("u", 500)
	subscribe(t, env, locA, users)
	y, err := x.Fit(ctx, locA, 0, true)
	require.NoError(t, err)
	require.Equal(t, 8, y.N)
	prepared := map[int][]string{}
	for _, g := range y.Groups {
		m, err := x.Members(ctx, locA, 8, g)
		require.NoError(t, err)
		prepared[g] = slices.Sorted(slices.Values(m))
	}
	check := func(what string) {
		t.Helper()
		// Read one by one, and all together with a location never built.
		reqs := []grouping.MembersRequest{{Loc: locB, Layout: 8, Group: 0}}
		for g, want := range prepared {
			m, err := x.Members(ctx, locA, 8, g)
			require.NoError(t, err)
			require.Equal(t, want, slices.Sorted(slices.Values(m)), "%s: group %d of 8", what, g)
			reqs = append(reqs, grouping.MembersRequest{Loc: locA, Layout: 8, Group: g})
		}
		all, errs := x.MembersOf(ctx, reqs)
		require.ErrorIs(t, errs[0], grouping.ErrNotBuilt, "%s: a location never built", what)
		for i, q := range reqs[1:] {
			require.NoError(t, errs[i+1])
			require.Equal(t, prepared[q.Group], slices.Sorted(slices.Values(all[i+1])), "%s: group %d of 8, read together", what, q.Group)
		}
	}
	require.NoError(t, x.Regroup(ctx, locA, 32))
	check("index regrouped to 32")
	require.NoError(t, x.Regroup(ctx, locA, 2))
	check("index regrouped to 2")
	deleteKeys(t, env.Redis, env.Prefix)
	x.GroupSize = 1000 // the rebuild picks 1 group
	require.NoError(t, x.EnsureBuilt(ctx, locA))
	y, err = x.Groups(ctx, locA)
	require.NoError(t, err)
	require.Equal(t, 1, y.N)
	check("index rebuilt with 1 group")
}

// Fault: a regroup is cut short (its context ends after it changed the
// layout, before it moved every member). Checked: reads of either layout
// are right meanwhile, and the next Fit finishes the regroup.
func TestInterruptedRegroupIsFinished(t *testing.T) {
	env, x := newIndex(t)
	ctx := context.Background()
	users := userIDs("u", 3000)
	oneGroupOf(t, env, x, users)

	// Cut short after its first move: the layout is 64, the regroup's
	// source (1) still recorded.
	cutShort(t, env, &cancelAfterMove{}, 64)
	y, err := x.Groups(ctx, locA)
	require.NoError(t, err)
	require.Equal(t, 64, y.N)
	for g := range 64 {
		m, err := x.Members(ctx, locA, 64, g)
		require.NoError(t, err)
		for _, u := range m {
			require.Equal(t, g, grouping.Of(u, 64))
		}
	}
	_, err = x.Fit(ctx, locA, 0, true)
	require.NoError(t, err)
	y = everyone(t, x, locA, users)
	require.Equal(t, 64, y.N)
	keys, err := scanKeys(env.Redis, env.Prefix+"*:from")
	require.NoError(t, err)
	require.Empty(t, keys, "the regroup is finished")
}

// oneGroupOf subscribes users to locA in one group: the layout fixed at
// one, so that the writes do not grow it themselves.
func oneGroupOf(t *testing.T, env *testenv.Env, x *grouping.Index, users []string) {
	t.Helper()
	ctx := context.Background()
	subscribe(t, env, locA, users[:10])
	_, err := x.Fit(ctx, locA, 1, true)
	require.NoError(t, err)
	var rows []store.Subscription
	var add []grouping.Member
	for _, u := range users[10:] {
		rows = append(rows, store.Subscription{ReminderID: locA.Reminder, LocationID: locA.Location, UserID: u, GroupNo: grouping.Bucket(u)})
		add = append(add, grouping.Member{Loc: locA, Bucket: grouping.Bucket(u), UserID: u})
	}
	require.NoError(t, env.DB.CreateInBatches(rows, 500).Error)
	require.NoError(t, x.Apply(ctx, add, nil))
}

// cutShort regroups locA to n on a client whose hook cancels the
// regroup's context, and checks that the regroup failed.
func cutShort(t *testing.T, env *testenv.Env, hook interface {
	redis.Hook
	setCancel(func())
}, n int) {
	t.Helper()
	cut, cancel := context.WithCancel(context.Background())
	defer cancel()
	hook.setCancel(cancel)
	rdb := redis.NewClient(env.Redis.Options())
	defer rdb.Close()
	rdb.AddHook(hook)
	require.Error(t, grouping.NewIndex(rdb, env.DB, env.Prefix).Regroup(cut, locA, n))
}

// Fault: a regroup from 1 group to 64 is cut short, and the next regroup,
// to 128, is cut short too, just after it set its layout. Then a user
// the first one had moved out of group 0 unsubscribes. Checked: the second
// regroup finished the first before it began (it is leaving 64 groups, not
// 1), so the removal reaches the group the user sits in, and once the
// regroup is finished the user is gone and everyone else is there once.
func TestRegroupToAnotherLayoutFinishesTheOneCutShort(t *testing.T) {
	env, x := newIndex(t)
	ctx := context.Background()
	users := userIDs("", 3000) // integer-like: set members, seen with SISMEMBER
	oneGroupOf(t, env, x, users)
	cutShort(t, env, &cancelAfterMove{}, 64)
	var gone string
	for _, u := range users {
		if h := grouping.Of(u, 64); h != 0 && grouping.Of(u, 128) != h {
			in, err := env.Redis.SIsMember(ctx, env.Prefix+"idx:{11:3}:g:"+strconv.Itoa(h), u).Result()
			require.NoError(t, err)
			if in {
				gone = u
				break
			}
		}
	}
	require.NotEmpty(t, gone, "a user the cut-short regroup moved")
	cutShort(t, env, &cancelAtLayout{n: 128}, 128)
	from, err := env.Redis.Get(ctx, env.Prefix+"idx:{11:3}:from").Int()
	require.NoError(t, err)
	require.Equal(t, 64, from, "the regroup to 128 leaves 64 groups")
	change(t, env, x, locA, nil, []string{gone})
	_, err = x.Fit(ctx, locA, 0, true)
	require.NoError(t, err)
	everyone(t, x, locA, slices.DeleteFunc(slices.Clone(users), func(u string) bool { return u == gone }))
}

// cancelAtLayout cancels a context once a pipeline set a location's
// layout to n.
type cancelAtLayout struct {
	n      int
	cancel func()
}

func (c *cancelAtLayout) setCancel(f func())                                   { c.cancel = f }
func (c *cancelAtLayout) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (c *cancelAtLayout) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (c *cancelAtLayout) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			if a := cmd.Args(); len(a) == 3 && a[0] == "set" && strings.HasSuffix(a[1].(string), ":layout") && a[2] == c.n {
				c.cancel()
			}
		}
		return err
	}
}

// cancelAfterMove cancels a context once a regroup's first move (the
// script that counts itself in the location's moves) has run.
type cancelAfterMove struct {
	cancel func()
}

func (c *cancelAfterMove) setCancel(f func())                          { c.cancel = f }
func (c *cancelAfterMove) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *cancelAfterMove) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (c *cancelAfterMove) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if name := cmd.Name(); err == nil && (name == "evalsha" || name == "eval") {
			for _, a := range cmd.Args() {
				if k, ok := a.(string); ok && strings.HasSuffix(k, ":moves") {
					c.cancel()
				}
			}
		}
		return err
	}
}

// UUID users through regroups: injected are a location of UUID users (lower
// and upper case), grown past several layouts and shrunk again by a regroup
// each time while other users subscribe and unsubscribe concurrently.
// Checked: after each regroup every user is read back exactly once, in the
// group of its hash, the group sizes add up (no entry stored twice), no
// UUID has left the packed strings for a set, and the index costs at most
// 24 bytes a member by MEMORY USAGE.
func TestRegroupKeepsUUIDsCompact(t *testing.T) {
	env, x := newIndex(t)
	ctx := context.Background()
	ids := func(from, to int) []string {
		out := make([]string, 0, to-from)
		for i := from; i < to; i++ {
			u := uuidLike(i)
			if i%5 == 0 {
				u = strings.ToUpper(u)
			}
			out = append(out, u)
		}
		return out
	}
	apply := func(add, remove []string) { change(t, env, x, locA, add, remove) }
	// regroup fits the layout while batches of add and remove arrive.
	regroup := func(add, remove []string) grouping.Layout {
		t.Helper()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < max(len(add), len(remove)); i += 25 {
				apply(add[min(i, len(add)):min(i+25, len(add))], remove[min(i, len(remove)):min(i+25, len(remove))])
			}
		}()
		_, err := x.Fit(ctx, locA, 0, true)
		require.NoError(t, err)
		wg.Wait()
		// A regroup that ran wholly before the last changes still leaves
		// them where the layout says; fit again for the final layout.
		y, err := x.Fit(ctx, locA, 0, true)
		require.NoError(t, err)
		return y
	}
	compact := func(users int) {
		t.Helper()
		sets, err := scanKeys(env.Redis, env.Prefix+"*{11:3}:g:*")
		require.NoError(t, err)
		require.Empty(t, sets, "UUIDs stay in packed strings")
		keys, err := scanKeys(env.Redis, env.Prefix+"*{11:3}:p:*")
		require.NoError(t, err)
		var usage int64
		for _, k := range keys {
			usage += env.Redis.MemoryUsage(ctx, k, 0).Val()
		}
		t.Logf("%d UUIDs in %d packed strings: %.1f bytes a member", users, len(keys), float64(usage)/float64(users))
		require.LessOrEqual(t, float64(usage)/float64(users), 24.0)
	}

	users := ids(0, 200)
	subscribe(t, env, locA, users)
	y, err := x.Fit(ctx, locA, 0, true)
	require.NoError(t, err)
	require.Equal(t, 4, y.N, "200 users in groups of at most 64: 4")
	everyone(t, x, locA, users)

	// Growth: 3,000 more, 1,000 of them and 150 removals during the split.
	more := ids(200, 3200)
	apply(more[:2000], nil)
	y = regroup(more[2000:], users[:150])
	all := append(slices.Clone(users[150:]), more...)
	require.Equal(t, 64, y.N, "3,050 users: 64 groups")
	everyone(t, x, locA, all)
	compact(len(all))

	// Shrink: most leave before, more leave and a few join during it.
	apply(nil, all[:2700])
	late := ids(5000, 5100)
	y = regroup(late, all[2700:2800])
	all = append(slices.Clone(all[2800:]), late...)
	require.Equal(t, 16, y.N, "350 users: halved while the groups average under 16")
	everyone(t, x, locA, all)
	compact(len(all))
}

// change commits subscriptions of add and removals of remove at l to the
// store, then applies them to the index, as the API does.
func change(t *testing.T, env *testenv.Env, x *grouping.Index, l grouping.Loc, add, remove []string) {
	t.Helper()
	var rows []store.Subscription
	var am, rm []grouping.Member
	for _, u := range add {
		rows = append(rows, store.Subscription{ReminderID: l.Reminder, LocationID: l.Location, UserID: u, GroupNo: grouping.Bucket(u)})
		am = append(am, grouping.Member{Loc: l, Bucket: grouping.Bucket(u), UserID: u})
	}
	if len(rows) > 0 {
		require.NoError(t, env.DB.Create(&rows).Error)
	}
	for _, u := range remove {
		require.NoError(t, env.DB.Where("reminder_id = ? AND user_id = ?", l.Reminder, u).Delete(&store.Subscription{}).Error)
		rm = append(rm, grouping.Member{Loc: l, Bucket: grouping.Bucket(u), UserID: u})
	}
	require.NoError(t, x.Apply(context.Background(), am, rm))
}

// A location filled in one registration past the intset limit is compact
// again after its next fit. Injected: 7.5 times the default target of
// integer IDs (3,000 under Redis's default set-max-intset-entries, 24,000
// under the 4096 scripts/testenv.sh sets) added to a layout of one group
// that the reminder fixes (so the writes do not grow it), whose set becomes
// a hash table, then the reminder sized per location again. Checked: the
// fit splits it into 8 groups of about the target and every group's set,
// the one split included, is an intset holding exactly its users.
func TestFitCompactsAGroupOneRegistrationFilled(t *testing.T) {
	env, x := newIndex(t)
	x.GroupSize = 0 // the default, from Redis's set-max-intset-entries
	target := x.Target()
	ctx := context.Background()
	require.NoError(t, x.MarkBuilt(ctx, 1, locA))
	users := make([]string, target*15/2)
	for i := range users {
		users[i] = strconv.Itoa(5_000_000 + i*7)
	}
	change(t, env, x, locA, users, nil)
	key := memberKey(t, env)
	require.Equal(t, "hashtable", env.Redis.ObjectEncoding(ctx, key).Val(), "%d members are past the intset limit", len(users))

	y, err := x.Fit(ctx, locA, 0, true)
	require.NoError(t, err)
	require.Equal(t, 8, y.N, "%d users in groups of at most %d on average", len(users), target)
	everyone(t, x, locA, users)
	keys, err := scanKeys(env.Redis, env.Prefix+"*:g:*")
	require.NoError(t, err)
	require.Len(t, keys, 8)
	for _, k := range keys {
		require.Equal(t, "intset", env.Redis.ObjectEncoding(ctx, k).Val(), k)
	}
}

// A location sized per its audience grows its layout as it is written, not
// only at the next fit: injected is one registration of 7.5 times the
// default target of integer IDs (3,000 under Redis's default
// set-max-intset-entries, 24,000 under scripts/testenv.sh's 4096) into a
// new location's empty index (one group), and a second registration of
// ten times as many into the same location, with a location whose reminder
// fixes 2 groups written the same way beside it. Checked: right after each
// write, with no fit between, the sized location has the layout that fits
// its audience (8, then 128) and every group set is an intset holding
// exactly the users of its hash; the fixed location keeps its 2 groups.
func TestWritesGrowTheLayout(t *testing.T) {
	env, x := newIndex(t)
	x.GroupSize = 0 // the default, from Redis's set-max-intset-entries
	target := x.Target()
	ctx := context.Background()
	require.NoError(t, x.MarkBuilt(ctx, 0, locA))
	require.NoError(t, x.MarkBuilt(ctx, 2, locB))
	ids := func(from, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = strconv.Itoa(from + i)
		}
		return out
	}
	first, second := ids(1_000_000, target*15/2), ids(2_000_000, target*75)
	change(t, env, x, locA, first, nil)
	y := everyone(t, x, locA, first)
	require.Equal(t, 8, y.N, "%d users in groups of at most %d on average", len(first), target)
	change(t, env, x, locA, second, nil)
	y = everyone(t, x, locA, append(slices.Clone(first), second...))
	require.Equal(t, 128, y.N, "%d users in groups of at most %d on average", len(first)+len(second), target)
	keys, err := scanKeys(env.Redis, env.Prefix+"idx:{11:3}:g:*")
	require.NoError(t, err)
	require.Len(t, keys, 128)
	for _, k := range keys {
		require.Equal(t, "intset", env.Redis.ObjectEncoding(ctx, k).Val(), k)
	}

	change(t, env, x, locB, ids(3_000_000, 3000), nil)
	y = everyone(t, x, locB, ids(3_000_000, 3000))
	require.Equal(t, 2, y.N, "the reminder fixes 2 groups")
}

// A pipeline is no transaction. Injected: a read of group 0 of layout 8
// (250 integer-like and 250 string IDs) is held on its connection, after
// its reads of the layout (8, no regroup) and before those of the group,
// by a BLPOP the read queues there, while from another connection the
// location regroups to 32, or loses its built marker and is rebuilt in
// one group; then the read is let go. Checked: group 0's keys hold other
// users by then (fewer after the regroup, everyone after the rebuild), yet
// the read returns exactly the users group 0 of 8 had, each once: it saw
// the location's count of moves change and read again, once.
func TestReadHeldAcrossARegroupReadsAgain(t *testing.T) {
	for _, tc := range []struct {
		name      string
		meanwhile func(t *testing.T, env *testenv.Env, x *grouping.Index) int // the new layout
	}{
		{"regrouped to 32", func(t *testing.T, env *testenv.Env, x *grouping.Index) int {
			require.NoError(t, x.Regroup(context.Background(), locA, 32))
			return 32
		}},
		{"rebuilt in 1 group", func(t *testing.T, env *testenv.Env, x *grouping.Index) int {
			ctx := context.Background()
			keys, err := env.Redis.Keys(ctx, env.Prefix+"*built").Result()
			require.NoError(t, err)
			require.Len(t, keys, 1)
			require.NoError(t, env.Redis.Del(ctx, keys...).Err())
			x.GroupSize = 1000
			require.NoError(t, x.EnsureBuilt(ctx, locA))
			return 1
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := newIndex(t)
			ctx := context.Background()
			// A pipeline's replies are awaited for the client's read timeout
			// (3 s by default), not the BLPOP's: a slow regroup must not time
			// the held read out, whose pipeline would then be sent again after.
			opt := *env.Redis.Options()
			opt.ReadTimeout = 30 * time.Second
			rdb := redis.NewClient(&opt)
			t.Cleanup(func() { rdb.Close() })
			x := grouping.NewIndex(rdb, env.DB, env.Prefix)
			x.GroupSize = testGroupSize
			users := append(userIDs("u", 250), userIDs("", 250)...)
			subscribe(t, env, locA, users)
			y, err := x.Fit(ctx, locA, 0, true)
			require.NoError(t, err)
			require.Equal(t, 8, y.N)
			want, err := x.Members(ctx, locA, 8, 0)
			require.NoError(t, err)

			reached, gate := env.Prefix+"reached", env.Prefix+"gate"
			var holds atomic.Int32 // the hook runs on the reading goroutine and on this one
			grouping.SetBeforeMembers(x, func(pipe redis.Pipeliner) {
				if holds.Add(1) == 1 {
					pipe.RPush(ctx, reached, "1")
					pipe.BLPop(ctx, 20*time.Second, gate)
				}
			})
			type read struct {
				members []string
				err     error
			}
			done := make(chan read, 1)
			go func() {
				m, err := x.Members(ctx, locA, 8, 0)
				done <- read{m, err}
			}()
			// The read's layout reads have run once it pushed to reached.
			require.NoError(t, env.Redis.BLPop(ctx, 20*time.Second, reached).Err())
			n := tc.meanwhile(t, env, x)
			now, err := x.Members(ctx, locA, n, 0)
			require.NoError(t, err)
			require.NotEqual(t, len(want), len(now), "group 0's keys hold other users")
			before := holds.Load()
			require.NoError(t, env.Redis.RPush(ctx, gate, "go").Err())
			got := <-done
			require.NoError(t, got.err)
			require.Equal(t, want, got.members)
			require.Equal(t, before+1, holds.Load(), "the held read was made again once")
		})
	}
}
