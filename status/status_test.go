package status_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/keyspace"
	"github.com/chime-dev/chime/status"
)

// Counts add up across calls in MySQL; the detail keeps the latest state,
// never an earlier one; the detail is capped per user and expires.
func TestRecord(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	r := status.New(status.Config{Prefix: env.Prefix, PerUser: 3, Retention: time.Hour}, env.Redis, env.DB)
	now := time.Now()
	e := func(user, msg, state string) status.Entry {
		return status.Entry{App: 1, User: user, Message: msg, Occurrence: inbox.OccurrenceOf(msg), Channel: status.Gateway, State: state}
	}
	require.NoError(t, r.Record(ctx, []status.Entry{e("a", "o1", status.Sent), e("b", "o1", status.Sent)}, now))
	require.NoError(t, r.Record(ctx, []status.Entry{e("a", "o1", status.Delivered)}, now.Add(time.Millisecond)))
	require.NoError(t, r.Record(ctx, []status.Entry{e("b", "o1", status.Delivered), e("b", "o1", status.Sent)}, now.Add(2*time.Millisecond)))
	counts, err := status.Counts(ctx, env.DB, 1)
	require.NoError(t, err)
	require.Equal(t, map[string]map[string]int64{status.Gateway: {status.Sent: 2, status.Delivered: 2}}, counts, "b's second sent is a repeat, not counted")

	d, err := r.User(ctx, 1, "b", 10, inbox.OccurrenceOf)
	require.NoError(t, err)
	require.Len(t, d, 1)
	require.Equal(t, status.Delivered, d[0].State, "a late sent does not undo delivered")
	require.EqualValues(t, 1, d[0].Occurrence)

	for i := 2; i <= 5; i++ {
		require.NoError(t, r.Record(ctx, []status.Entry{e("a", fmt.Sprintf("o%d", i), status.Sent)}, now.Add(time.Duration(i)*time.Second)))
	}
	d, err = r.User(ctx, 1, "a", 10, inbox.OccurrenceOf)
	require.NoError(t, err)
	require.Equal(t, []string{"o5", "o4", "o3"}, []string{d[0].Message, d[1].Message, d[2].Message}, "newest first, capped at 3")
	ttl, err := env.Redis.PTTL(ctx, keyspace.Shard(env.Prefix, 1, "a")+"st").Result()
	require.NoError(t, err)
	require.InDelta(t, time.Hour.Seconds(), ttl.Seconds(), 5)
}

// A user's lines run oldest first and an updated entry moves to the end:
// with a cap of 3, updating the oldest entry keeps it when a fourth comes,
// and the one dropped is the least recently updated; a repeat of an
// earlier state after a later one counts nothing and changes nothing.
func TestRecordKeepsTheRecentlyUpdated(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	r := status.New(status.Config{Prefix: env.Prefix, PerUser: 3, Retention: time.Hour}, env.Redis, env.DB)
	now := time.Now()
	e := func(msg, state string) status.Entry {
		return status.Entry{App: 1, User: "a", Message: msg, Occurrence: inbox.OccurrenceOf(msg), Channel: status.Gateway, State: state}
	}
	for i, m := range []string{"o11", "o12", "o13"} {
		require.NoError(t, r.Record(ctx, []status.Entry{e(m, status.Sent)}, now.Add(time.Duration(i)*time.Second)))
	}
	require.NoError(t, r.Record(ctx, []status.Entry{e("o11", status.Delivered), e("o11", status.Sent)}, now.Add(3*time.Second)))
	require.NoError(t, r.Record(ctx, []status.Entry{e("o14", status.Sent)}, now.Add(4*time.Second)))
	d, err := r.User(ctx, 1, "a", 10, inbox.OccurrenceOf)
	require.NoError(t, err)
	got := make([]string, len(d))
	for i, x := range d {
		got[i] = x.Message + " " + x.State
	}
	require.Equal(t, []string{"o14 sent", "o11 delivered", "o13 sent"}, got)
	counts, err := status.Counts(ctx, env.DB, 11)
	require.NoError(t, err)
	require.Equal(t, map[string]map[string]int64{status.Gateway: {status.Sent: 1, status.Delivered: 1}}, counts)
}

// The index of last updates dates a user ahead (keyspace.ShardLua), so
// that a user updated again soon is not dated again: a user updated at t
// and t+1s is still kept at t+1s+Retention-1s (the second update counts),
// and dropped by an update of another user once Retention and its
// sixteenth have passed since.
func TestRecordDropsUsersAfterRetention(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	keep := time.Hour
	r := status.New(status.Config{Prefix: env.Prefix, Retention: keep}, env.Redis, env.DB)
	// b shares a's shard, so that its updates drop a.
	b := ""
	for i := 0; b == ""; i++ {
		if u := fmt.Sprintf("b%d", i); keyspace.UserShard(1, u) == keyspace.UserShard(1, "a") {
			b = u
		}
	}
	e := func(user, msg string) status.Entry {
		return status.Entry{App: 1, User: user, Message: msg, Channel: status.Gateway, State: status.Sent}
	}
	t0 := time.Now()
	require.NoError(t, r.Record(ctx, []status.Entry{e("a", "m1")}, t0))
	require.NoError(t, r.Record(ctx, []status.Entry{e("a", "m2")}, t0.Add(time.Second)))
	has := func() bool {
		n, err := env.Redis.HExists(ctx, keyspace.Shard(env.Prefix, 1, "a")+"st", "a").Result()
		require.NoError(t, err)
		return n
	}
	require.NoError(t, r.Record(ctx, []status.Entry{e(b, "m3")}, t0.Add(keep)))
	require.True(t, has(), "kept for Retention after its last update")
	require.NoError(t, r.Record(ctx, []status.Entry{e(b, "m4")}, t0.Add(keep+keep/16+time.Second)))
	require.False(t, has(), "dropped once Retention and a sixteenth have passed")
	// The index is a skiplist from its first write (a few users would keep
	// it a listpack, scanned whole for each member), and the member that
	// makes it one, scored +inf, is never dropped as a user.
	index := keyspace.Shard(env.Prefix, 1, "a") + "st-at"
	enc, err := env.Redis.ObjectEncoding(ctx, index).Result()
	require.NoError(t, err)
	require.Equal(t, "skiplist", enc)
	dated, err := env.Redis.ZRangeArgs(ctx, redis.ZRangeArgs{Key: index, Start: "-inf", Stop: "(+inf", ByScore: true}).Result()
	require.NoError(t, err)
	require.Equal(t, []string{b}, dated, "a left the index with its field; only b is dated")
}
