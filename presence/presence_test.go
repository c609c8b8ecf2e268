package presence_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/presence"
)

// A user with connections on two gateways is online at both; removing one
// connection leaves the other (removal is by connection, so an old
// connection closing never removes a newer one); removing both makes the
// user offline, and leaves the shard's index dating nobody.
func TestRegisterLookupRemove(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	r := presence.New(presence.Config{Prefix: env.Prefix, TTL: time.Minute}, env.Redis)
	a := presence.Conn{App: 1, User: "u", Instance: "g1", ID: "c1"}
	b := presence.Conn{App: 1, User: "u", Instance: "g2", ID: "c2"}
	require.NoError(t, r.Register(ctx, a))
	require.NoError(t, r.Register(ctx, b))
	got, err := r.Lookup(ctx, 1, []string{"u", "nobody"})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.ElementsMatch(t, []string{"g1", "g2"}, got["u"])
	got, err = r.Lookup(ctx, 2, []string{"u"})
	require.NoError(t, err)
	require.Empty(t, got, "another app's user")

	require.NoError(t, r.Remove(ctx, a))
	require.NoError(t, r.Remove(ctx, a))
	got, err = r.Lookup(ctx, 1, []string{"u"})
	require.NoError(t, err)
	require.Equal(t, []string{"g2"}, got["u"])
	require.NoError(t, r.Remove(ctx, b))
	got, err = r.Lookup(ctx, 1, []string{"u"})
	require.NoError(t, err)
	require.Empty(t, got)
	// The shard's index of lapse times is a skiplist from its first write
	// (keyspace.ShardLua), and once u is gone it dates no user: the member
	// that keeps it a skiplist is scored +inf, never a lapse time.
	index := presence.Key(env.Prefix, 1, "u") + "-at"
	enc, err := env.Redis.ObjectEncoding(ctx, index).Result()
	require.NoError(t, err)
	require.Equal(t, "skiplist", enc)
	dated, err := env.Redis.ZRangeArgs(ctx, redis.ZRangeArgs{Key: index, Start: "-inf", Stop: "(+inf", ByScore: true}).Result()
	require.NoError(t, err)
	require.Empty(t, dated)
}

// A connection not refreshed stops counting within the TTL, and its entry
// goes away; Refresh extends live ones and reports the ones it no longer
// finds instead of re-creating them.
func TestPresenceExpires(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	r := presence.New(presence.Config{Prefix: env.Prefix, TTL: 400 * time.Millisecond}, env.Redis)
	live := presence.Conn{App: 1, User: "live", Instance: "g1", ID: "c1"}
	dead := presence.Conn{App: 1, User: "dead", Instance: "g1", ID: "c2"}
	require.NoError(t, r.Register(ctx, live))
	require.NoError(t, r.Register(ctx, dead))
	start := time.Now()
	testenv.WaitUntil(t, 5*time.Second, "the unrefreshed user offline", func() bool {
		missing, err := r.Refresh(ctx, []presence.Conn{live})
		require.NoError(t, err)
		require.Empty(t, missing)
		got, err := r.Lookup(ctx, 1, []string{"live", "dead"})
		require.NoError(t, err)
		require.Contains(t, got, "live")
		return len(got) == 1
	})
	t.Logf("offline after %v (TTL 400ms)", time.Since(start).Round(time.Millisecond))
	testenv.WaitUntil(t, 5*time.Second, "the key gone", func() bool {
		_, err := r.Refresh(ctx, []presence.Conn{live})
		require.NoError(t, err)
		there, err := env.Redis.HExists(ctx, presence.Key(env.Prefix, 1, "dead"), "dead").Result()
		return err == nil && !there
	})
	missing, err := r.Refresh(ctx, []presence.Conn{live, dead})
	require.NoError(t, err)
	require.Equal(t, []presence.Conn{dead}, missing)
	got, err := r.Lookup(ctx, 1, []string{"dead"})
	require.NoError(t, err)
	require.Empty(t, got, "Refresh does not bring a removed connection back")
}
