package grouping_test

import (
	"context"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/internal/testenv"
)

// Sets of every intset width, signs and size, written by the real Redis
// with rdbcompression on (Redis's default: small sets serialized raw,
// larger ones LZF-compressed) and off (the recommended setting: every one
// raw). Decoding DUMP gives what SMEMBERS says, in byte order (numeric, as
// SMEMBERS, when some are negative); any cut of the payload is refused.
func TestIntsetMembersMatchSMembers(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	limit := intsetLimit(t, env)
	was, err := env.Redis.ConfigGet(ctx, "rdbcompression").Result()
	require.NoError(t, err)
	t.Cleanup(func() { env.Redis.ConfigSet(context.Background(), "rdbcompression", was["rdbcompression"]) })
	for _, compression := range []string{"yes", "no"} {
		require.NoError(t, env.Redis.ConfigSet(ctx, "rdbcompression", compression).Err())
		forms := intsetPayloads(t, env, limit, compression)
		if compression == "yes" {
			require.Positive(t, forms[true], "some payloads compressed")
			require.Positive(t, forms[false], "some payloads raw")
		} else {
			require.Zero(t, forms[true], "no payload compressed")
		}
	}
	t.Run("a set of strings", func(t *testing.T) {
		key := env.Prefix + "dump:strings"
		require.NoError(t, env.Redis.SAdd(ctx, key, "1", "bob").Err())
		payload, err := env.Redis.Dump(ctx, key).Result()
		require.NoError(t, err)
		_, err = grouping.IntsetMembers(payload)
		require.ErrorIs(t, err, grouping.ErrNotIntset)
	})
}

// commandCounter counts the commands named name that a client sends.
type commandCounter struct {
	name string
	n    atomic.Int64
}

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == c.name {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if cmd.Name() == c.name {
				c.n.Add(1)
			}
		}
		return next(ctx, cmds)
	}
}

// A Redis whose ACL refuses DUMP to the engine's user (as hosted Redis
// may): the first group read gets the refusal and reads the set with
// SMEMBERS, with the same members; later reads do not ask DUMP again.
func TestGroupReadWithoutDump(t *testing.T) {
	env, x := newIndex(t)
	ctx := context.Background()
	user := "chime-nodump-" + testenv.ID()
	require.NoError(t, env.Redis.Do(ctx, "ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-dump").Err())
	t.Cleanup(func() { env.Redis.Do(context.Background(), "ACL", "DELUSER", user) })
	opt := env.Redis.Options()
	opt.Username, opt.Password = user, "pw"
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	require.ErrorContains(t, rdb.Dump(ctx, "any").Err(), "NOPERM")
	dumps := &commandCounter{name: "dump"}
	rdb.AddHook(dumps)
	nx := grouping.NewIndex(rdb, env.DB, env.Prefix)
	nx.GroupSize = testGroupSize

	users := append(userIDs("", 50), "carol", uuidLike(3))
	want := subscribe(t, env, locA, users)
	require.NoError(t, x.EnsureBuilt(ctx, locA))
	y, err := nx.Groups(ctx, locA)
	require.NoError(t, err)
	for i, g := range y.Groups {
		got, err := nx.Members(ctx, locA, y.N, g)
		require.NoError(t, err)
		require.Equal(t, slices.Sorted(slices.Values(want[g])), got, "group %d", g)
		require.EqualValues(t, 1, dumps.n.Load(), "DUMP asked once, at the first read (read %d)", i)
	}
	// The index with DUMP allowed reads the same.
	requireIndex(t, x, locA, want)
}

// intsetPayloads writes the sets of TestIntsetMembersMatchSMembers, checks
// their DUMP payloads decode right, and counts the payloads LZF-compressed
// (true) and raw (false).
func intsetPayloads(t *testing.T, env *testenv.Env, limit int, compression string) map[bool]int {
	ctx := context.Background()
	forms := map[bool]int{}
	for k, tc := range []struct {
		name string
		n    int
		id   func(i int) int64
	}{
		{"one member", 1, func(int) int64 { return 7 }},
		{"16-bit, negatives", 5, func(i int) int64 { return int64(i*1000 - 2000) }},
		{"32-bit", 400, func(i int) int64 { return 1_000_000 + int64(i)*7919 }},
		{"32-bit, sequential (compresses well)", 3000, func(i int) int64 { return 1_000_000 + int64(i) }},
		{"64-bit", 400, func(i int) int64 { return 90_000_000_000 + int64(i)*7919 }},
		{"64-bit extremes", 3, func(i int) int64 { return []int64{-9223372036854775808, 0, 9223372036854775807}[i] }},
		{"mixed lengths", 2000, func(i int) int64 { return int64(i) * int64(i) * 37 }},
	} {
		t.Run(compression+"/"+tc.name, func(t *testing.T) {
			if tc.n > limit {
				t.Skipf("this Redis keeps intsets of at most %d", limit)
			}
			key := env.Prefix + "dump:" + compression + ":" + strconv.Itoa(k)
			members := make([]any, tc.n)
			for i := range members {
				members[i] = tc.id(i)
			}
			require.NoError(t, env.Redis.SAdd(ctx, key, members...).Err())
			require.Equal(t, "intset", env.Redis.ObjectEncoding(ctx, key).Val())
			payload, err := env.Redis.Dump(ctx, key).Result()
			require.NoError(t, err)
			got, err := grouping.IntsetMembers(payload)
			require.NoError(t, err)
			set, err := env.Redis.SMembers(ctx, key).Result()
			require.NoError(t, err)
			require.Equal(t, slices.Sorted(slices.Values(set)), slices.Sorted(slices.Values(got)), "the members SMEMBERS names")
			if tc.id(0) >= 0 {
				require.True(t, slices.IsSorted(got), "in byte order")
			} else {
				require.Equal(t, set, got, "in SMEMBERS's order, negatives first")
			}
			lzf := payload[1] == 0xC3
			forms[lzf]++
			t.Logf("%d members: %d bytes of DUMP (%.1f a member), LZF %v", tc.n, len(payload), float64(len(payload))/float64(tc.n), lzf)
			for cut := 1; cut < len(payload); cut += max(1, len(payload)/50) {
				_, err := grouping.IntsetMembers(payload[:len(payload)-cut])
				require.ErrorIs(t, err, grouping.ErrNotIntset, "cut by %d", cut)
			}
		})
	}
	return forms
}
