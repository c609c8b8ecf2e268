package policy_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/keyspace"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/policy"
	"github.com/chime-dev/chime/store"
)

var noon = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// preferred returns a policy on the test's servers whose app 1 has 300
// users with preferUsers' preferences, and those users.
func preferred(t *testing.T) (*testenv.Env, *policy.Policy, []string) {
	t.Helper()
	env := testenv.New(t)
	pol := policy.New(policy.Config{Prefix: env.Prefix}, env.Redis, env.DB)
	users := numbered(300)
	preferUsers(t, env.DB, pol, 1, users)
	return env, pol, users
}

// preferUsers stores users' preferences in MySQL and builds the app's
// mirror from them, as a bulk import does: user i with i mod 10 = 0 opted
// out of "marketing", with i mod 10 = 1 in quiet hours at noon in London.
func preferUsers(t testing.TB, db *gorm.DB, pol *policy.Policy, app int64, users []string) {
	t.Helper()
	var rows []store.UserPreference
	for i, u := range users {
		var p policy.Preferences
		switch i % 10 {
		case 0:
			p.Categories = []string{"marketing"}
		case 1:
			p.QuietHours = &policy.Hours{Start: "11:00", End: "14:00"}
		default:
			continue
		}
		p, errs := p.Check()
		require.Empty(t, errs)
		doc, err := json.Marshal(p)
		require.NoError(t, err)
		rows = append(rows, store.UserPreference{AppID: app, UserID: u, Shard: policy.Shard(app, u), Doc: string(doc)})
	}
	require.NoError(t, db.CreateInBatches(rows, 1000).Error)
	require.NoError(t, pol.Rebuild(context.Background(), app))
}

// capped is the bench's policy message: category marketing, quiet users
// dropped, 3 a day.
func capped(app, occurrence int64) message.Message {
	return message.Message{App: app, Occurrence: occurrence, Reminder: "news", Zone: "Europe/London",
		Policy: &message.Policy{Category: "marketing", Drop: true, CapMax: 3, CapWindow: 24 * time.Hour}}
}

// wantDecision is what a chunk of users (preferUsers's) gets at its n-th
// distinct occurrence under capped's cap.
func wantDecision(users []string, n int) policy.Decision {
	d := policy.Decision{Send: []string{}, Outcomes: map[string][]string{}}
	for i, u := range users {
		switch {
		case i%10 == 0:
			d.Outcomes[policy.SkippedPreference] = append(d.Outcomes[policy.SkippedPreference], u)
		case i%10 == 1:
			d.Outcomes[policy.Quiet] = append(d.Outcomes[policy.Quiet], u)
		case n > 3:
			d.Outcomes[policy.Capped] = append(d.Outcomes[policy.Capped], u)
		default:
			d.Send = append(d.Send, u)
		}
	}
	return d
}

func numbered(n int) []string {
	users := make([]string, n)
	for i := range users {
		users[i] = "user-" + strconv.Itoa(i)
	}
	return users
}

// decideRounds decides users four times at distinct occurrences, each one
// twice (a chunk sent again), and checks every decision.
func decideRounds(t *testing.T, pol *policy.Policy, app int64, users []string) {
	t.Helper()
	ctx := context.Background()
	for n := 1; n <= 4; n++ {
		for range 2 {
			d, err := pol.Decide(ctx, capped(app, int64(100+n)), users, noon.Add(time.Duration(n)*time.Minute))
			require.NoError(t, err)
			require.Equal(t, wantDecision(users, n), d, "occurrence %d", n)
		}
	}
}

// Injects: chunks of 300 and 2,500 users over all 64 shards, 10% opted out
// of the category, 10% in quiet hours, a cap of 3 a day, each chunk
// decided twice (sent again). Checks: on a single Redis (one script for
// the 300, three for the 2,500) and on a 3-master Redis Cluster (one
// script per shard, each in its slot) every decision is as the
// preferences say: opted-out and quiet users left out, the others sent
// three times and capped at the fourth occurrence, a chunk sent again
// counting nobody twice; on the Cluster an app without preferences is
// found so (its state recorded "none") and sent to all.
func TestDecideSingleRedisAndCluster(t *testing.T) {
	env := testenv.New(t)
	users := numbered(2500)
	single := policy.New(policy.Config{Prefix: env.Prefix}, env.Redis, env.DB)
	preferUsers(t, env.DB, single, 1, users)
	decideRounds(t, single, 1, users[:300])
	decideRounds(t, single, 1, users[300:])

	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	rdb, err := chime.OpenRedis(context.Background(), testenv.RedisCluster(t, 3))
	require.NoError(t, err)
	defer rdb.Close()
	_, ok := rdb.(*redis.ClusterClient)
	require.True(t, ok)
	prefix := "chime-test:" + testenv.ID() + ":"
	cluster := policy.New(policy.Config{Prefix: prefix}, rdb, env.DB)
	require.NoError(t, cluster.Rebuild(context.Background(), 1))
	decideRounds(t, cluster, 1, users[:300])
	// An app without preferences: its state is one key, in one slot.
	for occ := range int64(2) {
		d, err := cluster.Decide(context.Background(), uncapped(2, occ+1), users[:300], noon)
		require.NoError(t, err)
		require.Equal(t, policy.Decision{Send: users[:300]}, d)
	}
	require.Equal(t, "none", rdb.Get(context.Background(), keyspace.PreferenceState(prefix, 2)).Val())
}

// Injects: the loss of a few shards' preference hashes (not all) between
// two occurrences of a chunk. Checks: the decision of the chunk whose
// script found those shards not built rebuilds them from MySQL, so their
// opt-outs and quiet hours still hold, and the users of the shards that
// were decided in the first pass are counted once: every user is sent
// three times and capped at the fourth occurrence.
func TestDecideRebuildsLostShards(t *testing.T) {
	env, pol, users := preferred(t)
	ctx := context.Background()
	for n := 1; n <= 4; n++ {
		keys, err := env.Redis.Keys(ctx, env.Prefix+"*prefs").Result()
		require.NoError(t, err)
		require.Len(t, keys, 64)
		require.NoError(t, env.Redis.Del(ctx, keys[:n*5]...).Err())
		d, err := pol.Decide(ctx, capped(1, int64(200+n)), users, noon)
		require.NoError(t, err)
		require.Equal(t, wantDecision(users, n), d, "occurrence %d", n)
	}
}

// Injects: a capped chunk (a cap of 3 an hour) decided at noon, a minute
// later (a new occurrence) and an eighth of an hour later, on a Redis
// whose cap hashes are read between the decisions. Checks: every cap hash
// the chunk wrote expires between one window and a window and a sixteenth
// after noon, and holds that instant in ' expires'; the decision a minute
// later, whose writes that expiry still outlives by a window, leaves it
// and the hash's TTL alone (no PEXPIRE); the one an eighth later, whose
// writes it would not outlive, sets both a window and a sixteenth ahead of
// its own time; the users are sent each time, counted once per occurrence.
func TestDecideCapExpiry(t *testing.T) {
	env, pol, users := preferred(t)
	ctx := context.Background()
	const window = time.Hour
	m := capped(1, 301)
	m.Policy.CapWindow = window
	type state struct {
		expires int64
		ttl     time.Duration
	}
	read := func() map[string]state {
		t.Helper()
		keys, err := env.Redis.Keys(ctx, env.Prefix+"*cap:marketing").Result()
		require.NoError(t, err)
		require.Greater(t, len(keys), 50, "the shards with users sent")
		got := map[string]state{}
		for _, k := range keys {
			v, err := env.Redis.HGet(ctx, k, " expires").Result()
			require.NoError(t, err)
			ms, err := strconv.ParseInt(strings.TrimRight(v, "-"), 10, 64)
			require.NoError(t, err, v)
			ttl, err := env.Redis.PTTL(ctx, k).Result()
			require.NoError(t, err)
			got[k] = state{ms, ttl}
		}
		return got
	}
	decide := func(occ int64, at time.Time) {
		t.Helper()
		m.Occurrence = occ
		d, err := pol.Decide(ctx, m, users, at)
		require.NoError(t, err)
		require.Equal(t, wantDecision(users, 1).Send, d.Send, "occurrence %d", occ)
	}
	ahead := window + window/16
	decide(301, noon)
	first := read()
	for k, s := range first {
		require.Equal(t, noon.Add(ahead).UnixMilli(), s.expires, k)
		require.Greater(t, s.ttl, window, k)
		require.LessOrEqual(t, s.ttl, ahead, k)
	}
	decide(302, noon.Add(time.Minute))
	require.Len(t, read(), len(first))
	for k, s := range read() {
		require.Equal(t, first[k].expires, s.expires, k)
		require.LessOrEqual(t, s.ttl, first[k].ttl, "%s: no PEXPIRE", k)
	}
	later := noon.Add(window / 8)
	decide(303, later)
	for k, s := range read() {
		require.Equal(t, later.Add(ahead).UnixMilli(), s.expires, k)
		require.Greater(t, s.ttl, window, k)
	}
	// Three occurrences counted: the fourth caps them.
	m.Occurrence = 304
	d, err := pol.Decide(ctx, m, users, later)
	require.NoError(t, err)
	require.Equal(t, wantDecision(users, 4), d)
}

// Injects: users opted out of the push channel (one of them also of the
// category), one with quiet hours of their own and the app's default quiet
// hours (23:00 to 07:00) on others, under a cap of 2 a day, decided at
// four occurrences: at noon, then at 23:30. Checks: at noon the push
// opt-outs are sent without push and counted, twice, and capped at the
// third occurrence (nothing sent, no exclusion left); the category
// opt-out is skipped; the user quiet at noon is held to 14:00 and the
// others sent; at 23:30 the users without quiet hours of their own are
// held to 07:00 by the app's, as is the capped user (quiet before the cap
// is read).
func TestDecideChannelsQuietAndCap(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	const app = 1
	pol := policy.New(policy.Config{Prefix: env.Prefix}, env.Redis, env.DB)
	docs := map[string]policy.Preferences{
		"push":  {Channels: []string{"push"}},
		"both":  {Channels: []string{"push"}, Categories: []string{"marketing"}},
		"quiet": {QuietHours: &policy.Hours{Start: "11:00", End: "14:00"}},
	}
	var rows []store.UserPreference
	for u, p := range docs {
		p, errs := p.Check()
		require.Empty(t, errs)
		doc, err := json.Marshal(p)
		require.NoError(t, err)
		rows = append(rows, store.UserPreference{AppID: app, UserID: u, Shard: policy.Shard(app, u), Doc: string(doc)})
	}
	require.NoError(t, env.DB.Create(&rows).Error)
	require.NoError(t, pol.Rebuild(ctx, app))
	users := []string{"both", "plain", "push", "quiet"}
	m := message.Message{App: app, Reminder: "news", Zone: "Europe/London",
		Policy: &message.Policy{Category: "marketing", CapMax: 2, CapWindow: 24 * time.Hour, Quiet: &message.Quiet{Start: 23 * 60, End: 7 * 60}}}
	decide := func(occ int64, at time.Time) policy.Decision {
		t.Helper()
		m.Occurrence = occ
		d, err := pol.Decide(ctx, m, users, at)
		require.NoError(t, err)
		return d
	}
	held := func(at time.Time, users ...string) map[time.Time][]string {
		return map[time.Time][]string{at: users}
	}
	for occ := int64(1); occ <= 2; occ++ {
		require.Equal(t, policy.Decision{Send: []string{"plain", "push"}, Exclude: map[string][]string{"push": {"push"}},
			Outcomes: map[string][]string{policy.SkippedPreference: {"both"}}, Holds: held(noon.Add(2*time.Hour), "quiet")},
			decide(occ, noon), "occurrence %d", occ)
	}
	require.Equal(t, policy.Decision{Send: []string{},
		Outcomes: map[string][]string{policy.SkippedPreference: {"both"}, policy.Capped: {"plain", "push"}}, Holds: held(noon.Add(2*time.Hour), "quiet")},
		decide(3, noon))
	night := noon.Add(11*time.Hour + 30*time.Minute)
	require.Equal(t, policy.Decision{Send: []string{"quiet"},
		Outcomes: map[string][]string{policy.SkippedPreference: {"both"}}, Holds: held(night.Add(7*time.Hour+30*time.Minute), "plain", "push")},
		decide(4, night))
}
