package presence_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/keyspace"
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

// entries reads the lapse instants of a user's entries, by member, and the
// index's date of the user (0: none).
func entries(t *testing.T, rdb *redis.Client, prefix string, app int64, user string) (map[string]int64, int64) {
	t.Helper()
	ctx := context.Background()
	key := presence.Key(prefix, app, user)
	v, err := rdb.HGet(ctx, key, user).Result()
	if err == redis.Nil {
		v, err = "", nil
	}
	require.NoError(t, err)
	out := map[string]int64{}
	for _, line := range strings.Split(v, "\n") {
		if line == "" {
			continue
		}
		i := strings.LastIndex(line, "|")
		require.Positive(t, i, "line %q", line)
		ms, err := strconv.ParseInt(line[i+1:], 10, 64)
		require.NoError(t, err, "line %q", line)
		out[line[:i]] = ms
	}
	date, err := rdb.ZScore(ctx, key+"-at", user).Result()
	if err == redis.Nil {
		return out, 0
	}
	require.NoError(t, err)
	return out, int64(date)
}

// Refreshes move a connection's instant forward every time, while the
// index dating its user is written only when the instant enters a new span
// of TTL: the test refreshes for three TTLs and checks after each refresh
// that the date is at or after the entry's instant and within one TTL of
// it, and that it both stayed put on some refreshes and moved on others.
func TestRefreshDatesTheIndexAhead(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	ttl := 300 * time.Millisecond
	r := presence.New(presence.Config{Prefix: env.Prefix, TTL: ttl}, env.Redis)
	c := presence.Conn{App: 1, User: "u", Instance: "g1", ID: "c1"}
	require.NoError(t, r.Register(ctx, c))
	es, date := entries(t, env.Redis, env.Prefix, 1, "u")
	var kept, moved int
	began := time.Now()
	testenv.WaitUntil(t, 5*time.Second, "refreshed for three TTLs", func() bool {
		missing, err := r.Refresh(ctx, []presence.Conn{c})
		require.NoError(t, err)
		require.Empty(t, missing)
		now, next := entries(t, env.Redis, env.Prefix, 1, "u")
		require.GreaterOrEqual(t, now["g1|c1"], es["g1|c1"])
		require.GreaterOrEqual(t, next, now["g1|c1"], "the date is at or after the instant")
		require.LessOrEqual(t, next, now["g1|c1"]+ttl.Milliseconds(), "the date is within a TTL of the instant")
		if now["g1|c1"] > es["g1|c1"] {
			if next == date {
				kept++
			} else {
				moved++
			}
		}
		es, date = now, next
		return time.Since(began) > 3*ttl && kept > 0 && moved > 0
	})
	t.Logf("index kept on %d refreshes, moved on %d", kept, moved)
}

// A user online on a gateway that died and on a live one: lookups skip the
// dead gateway's entry once it lapsed, and the live gateway's refreshes
// drop it from the field (when they date the user again, within one more
// TTL), leaving the live entry.
func TestLapsedEntriesDropped(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	r := presence.New(presence.Config{Prefix: env.Prefix, TTL: 300 * time.Millisecond}, env.Redis)
	dead := presence.Conn{App: 1, User: "u", Instance: "dead", ID: "c1"}
	live := presence.Conn{App: 1, User: "u", Instance: "live", ID: "c2"}
	require.NoError(t, r.Register(ctx, dead, live))
	testenv.WaitUntil(t, 5*time.Second, "the dead gateway's entry dropped", func() bool {
		missing, err := r.Refresh(ctx, []presence.Conn{live})
		require.NoError(t, err)
		require.Empty(t, missing)
		es, _ := entries(t, env.Redis, env.Prefix, 1, "u")
		require.Contains(t, es, "live|c2")
		return len(es) == 1
	})
	got, err := r.Lookup(ctx, 1, []string{"u"})
	require.NoError(t, err)
	require.Equal(t, []string{"live"}, got["u"])
}

// Members are matched whole: connection IDs "c" and "c|x" of one gateway
// (so members "g|c" and "g|c|x") are refreshed and removed each on its
// own, and removing one leaves the other's line as it was.
func TestMembersSharingAPrefix(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	r := presence.New(presence.Config{Prefix: env.Prefix, TTL: time.Minute}, env.Redis)
	short := presence.Conn{App: 1, User: "u", Instance: "g", ID: "c"}
	long := presence.Conn{App: 1, User: "u", Instance: "g", ID: "c|x"}
	require.NoError(t, r.Register(ctx, long, short))
	es, _ := entries(t, env.Redis, env.Prefix, 1, "u")
	require.Len(t, es, 2)
	require.NoError(t, r.Remove(ctx, short))
	after, _ := entries(t, env.Redis, env.Prefix, 1, "u")
	require.Equal(t, map[string]int64{"g|c|x": es["g|c|x"]}, after)
	missing, err := r.Refresh(ctx, []presence.Conn{short, long})
	require.NoError(t, err)
	require.Equal(t, []presence.Conn{short}, missing)
	got, err := r.Lookup(ctx, 1, []string{"u"})
	require.NoError(t, err)
	require.Equal(t, []string{"g"}, got["u"])
	require.NoError(t, r.Remove(ctx, long))
	after, date := entries(t, env.Redis, env.Prefix, 1, "u")
	require.Empty(t, after)
	require.Zero(t, date, "the user's date removed with their last entry")
}

// A shard holding more connections than one script takes (1,000) is
// refreshed by several scripts: 1,200 users of one shard are registered
// and refreshed, none reported missing, all online.
func TestRefreshLargeShard(t *testing.T) {
	env := testenv.NewRedis(t)
	r := presence.New(presence.Config{Prefix: env.Prefix, TTL: time.Minute}, env.Redis)
	var conns []presence.Conn
	var users []string
	for i := 0; len(conns) < 1200; i++ {
		u := "u" + strconv.Itoa(i)
		if keyspace.UserShard(1, u) == 0 {
			conns = append(conns, presence.Conn{App: 1, User: u, Instance: "g", ID: "c" + strconv.Itoa(i)})
			users = append(users, u)
		}
	}
	requireRegistered(t, r, conns, users)
}

// On a 3-master Redis Cluster every presence script touches one slot (a
// script over keys of two slots fails with CROSSSLOT): connections of 300
// users, over many shards and masters, are registered, refreshed, looked
// up and removed.
func TestOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	url := testenv.RedisCluster(t, 3)
	ctx := context.Background()
	rdb, err := chime.OpenRedis(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { rdb.Close() })
	r := presence.New(presence.Config{TTL: time.Minute}, rdb)
	conns := make([]presence.Conn, 300)
	users := make([]string, len(conns))
	for i := range conns {
		users[i] = "u" + strconv.Itoa(i)
		conns[i] = presence.Conn{App: 1, User: users[i], Instance: "g", ID: "c" + strconv.Itoa(i)}
	}
	requireRegistered(t, r, conns, users)
	for _, c := range conns {
		require.NoError(t, r.Remove(ctx, c))
	}
	got, err := r.Lookup(ctx, 1, users)
	require.NoError(t, err)
	require.Empty(t, got)
}

// requireRegistered registers conns (of app 1), refreshes them and checks
// that none is missing and that every one of users is found online.
func requireRegistered(t *testing.T, r *presence.Registry, conns []presence.Conn, users []string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, r.Register(ctx, conns...))
	missing, err := r.Refresh(ctx, conns)
	require.NoError(t, err)
	require.Empty(t, missing)
	got, err := r.Lookup(ctx, 1, users)
	require.NoError(t, err)
	require.Len(t, got, len(users))
}
