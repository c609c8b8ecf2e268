package policy_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/keyspace"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/metrics"
	"github.com/chime-dev/chime/policy"
	"github.com/chime-dev/chime/store"
)

// uncapped is a reminder of category marketing without a cap, quiet users
// dropped: its decision reads nothing per user but preferences.
func uncapped(app, occurrence int64) message.Message {
	return message.Message{App: app, Occurrence: occurrence, Reminder: "news", Zone: "Europe/London",
		Policy: &message.Policy{Category: "marketing", Drop: true}}
}

// writePreferences writes a user's preferences as the API does: MySQL,
// then policy's Mirror.
func writePreferences(t *testing.T, env *testenv.Env, pol *policy.Policy, app int64, user string, p policy.Preferences) {
	t.Helper()
	p, errs := p.Check()
	require.Empty(t, errs)
	doc, err := json.Marshal(p)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, store.PutPreferences(ctx, env.DB, store.UserPreference{AppID: app, UserID: user, Shard: policy.Shard(app, user), Doc: string(doc)}))
	require.NoError(t, pol.Mirror(ctx, app, user, string(doc)))
}

// state reads an app's preference state in Redis ("" if none).
func state(t *testing.T, env *testenv.Env, app int64) string {
	t.Helper()
	v, err := env.Redis.Get(context.Background(), keyspace.PreferenceState(env.Prefix, app)).Result()
	if err == redis.Nil {
		return ""
	}
	require.NoError(t, err)
	return v
}

// builtShards counts an app's shard hashes of preferences in Redis: the
// decision script's first run for an app builds all it touches.
func builtShards(t *testing.T, env *testenv.Env, app int64) int {
	t.Helper()
	n := 0
	for s := range keyspace.UserShards {
		ok, err := env.Redis.Exists(context.Background(), keyspace.UserShardKey(env.Prefix, app, s)+"prefs").Result()
		require.NoError(t, err)
		n += int(ok)
	}
	return n
}

// decideSkipped decides users under m at now and returns the decision and
// how many chunks were decided without the decision script meanwhile.
func decideSkipped(t *testing.T, pol *policy.Policy, m message.Message, users []string, now time.Time) (policy.Decision, int) {
	t.Helper()
	before := metrics.PolicySkippedChunks()
	d, err := pol.Decide(context.Background(), m, users, now)
	require.NoError(t, err)
	return d, int(metrics.PolicySkippedChunks() - before)
}

// optedOut is users[0] opted out of marketing: what a chunk of users gets
// under uncapped.
func optedOut(users []string) policy.Decision {
	return policy.Decision{Send: users[1:], Outcomes: map[string][]string{policy.SkippedPreference: {users[0]}}}
}

// Injects: an app with no stored preferences; chunks of an uncapped
// reminder with a category, then with the app's default quiet hours over
// noon (held, then dropped), then a capped one. Checks: every user of an
// uncapped chunk is sent (or held, or dropped, by the default) without the
// decision script: the skip is counted per chunk and no shard hash of the
// app is ever built (the script's first run builds each it touches); the
// state reads "none" after the first chunk; the capped reminder runs the
// script (not counted as skipped, the shards built).
func TestDecideSkipsAppWithoutPreferences(t *testing.T) {
	env := testenv.New(t)
	pol := policy.New(policy.Config{Prefix: env.Prefix}, env.Redis, env.DB)
	users := numbered(300)
	for n := range 3 {
		d, skipped := decideSkipped(t, pol, uncapped(1, int64(n+1)), users, noon)
		require.Equal(t, policy.Decision{Send: users}, d)
		require.Equal(t, 1, skipped)
		require.Equal(t, "none", state(t, env, 1))
	}
	require.Zero(t, builtShards(t, env, 1))

	m := uncapped(1, 10)
	m.Policy.Drop = false
	m.Policy.Quiet = &message.Quiet{Start: 11 * 60, End: 14 * 60}
	m.ExpiresAt = noon.Add(6 * time.Hour)
	d, skipped := decideSkipped(t, pol, m, users, noon)
	require.Equal(t, 1, skipped)
	require.Equal(t, policy.Decision{Send: []string{}, Holds: map[time.Time][]string{noon.Add(2 * time.Hour): users}}, d)
	m.Policy.Drop = true
	d, _ = decideSkipped(t, pol, m, users, noon)
	require.Equal(t, policy.Decision{Send: []string{}, Outcomes: map[string][]string{policy.Quiet: users}}, d)
	m.Policy.Critical = true
	d, _ = decideSkipped(t, pol, m, users, noon)
	require.Equal(t, policy.Decision{Send: users}, d)
	require.Zero(t, builtShards(t, env, 1))

	d, skipped = decideSkipped(t, pol, capped(1, 20), users, noon)
	require.Zero(t, skipped)
	require.Equal(t, users, d.Send)
	require.Equal(t, keyspace.UserShards, builtShards(t, env, 1))
}

// Injects: an app found without preferences (state "none"), then an
// opt-out of users[0] written as the API writes it (MySQL, then Mirror).
// Checks: the next chunk skips the opted-out user (the decision script
// ran, nothing counted as skipped), and the state says the app has some.
func TestDecideAfterPreferenceWrite(t *testing.T) {
	env := testenv.New(t)
	pol := policy.New(policy.Config{Prefix: env.Prefix}, env.Redis, env.DB)
	users := numbered(300)
	_, skipped := decideSkipped(t, pol, uncapped(1, 1), users, noon)
	require.Equal(t, 1, skipped)
	require.Equal(t, "none", state(t, env, 1))

	writePreferences(t, env, pol, 1, users[0], policy.Preferences{Categories: []string{"marketing"}})
	d, skipped := decideSkipped(t, pol, uncapped(1, 2), users, noon)
	require.Zero(t, skipped)
	require.Equal(t, optedOut(users), d)
	require.Equal(t, "some", state(t, env, 1))
}

// Injects: an app found without preferences, its state then read ahead
// on a pipeline (ReadState, as the worker does with its start ack), once
// before an opt-out of users[0] is written and once after. Checks: the
// chunk decided with the read taken before the write sends to everyone
// (the write had not returned when the chunk's decision began), without a
// round trip of its own; the one decided with the read taken after it
// skips the user; a capped reminder reads nothing ahead.
func TestDecideWithStateReadAhead(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	pol := policy.New(policy.Config{Prefix: env.Prefix}, env.Redis, env.DB)
	users := numbered(300)
	_, skipped := decideSkipped(t, pol, uncapped(1, 1), users, noon)
	require.Equal(t, 1, skipped)
	readAhead := func(occ int64) *policy.StateRead {
		pipe := env.Redis.Pipeline()
		r := pol.ReadState(ctx, pipe, uncapped(1, occ), noon)
		require.NotNil(t, r)
		_, err := pipe.Exec(ctx)
		require.NoError(t, err)
		return r
	}
	before := readAhead(2)
	writePreferences(t, env, pol, 1, users[0], policy.Preferences{Categories: []string{"marketing"}})
	after := readAhead(3)

	_, trips0 := metrics.PolicyCounts()
	d, err := pol.DecideWith(ctx, uncapped(1, 2), users, noon, before)
	require.NoError(t, err)
	require.Equal(t, policy.Decision{Send: users}, d)
	_, trips1 := metrics.PolicyCounts()
	require.Zero(t, trips1-trips0, "the state came with the read ahead")
	d, err = pol.DecideWith(ctx, uncapped(1, 3), users, noon, after)
	require.NoError(t, err)
	require.Equal(t, optedOut(users), d)

	require.Nil(t, pol.ReadState(ctx, env.Redis.Pipeline(), capped(1, 4), noon), "a cap runs the script, which reads everything")
}

// Injects: an opt-out of users[0] written (as the API does) while a chunk
// asks MySQL whether the app has preferences: after it read the state and
// before it asks MySQL ("count"), and after MySQL answered none and before
// the answer is recorded ("set"); and the state key's loss at "set".
// Checks: a write before the question is honoured by that very chunk; a
// write after the answer leaves the chunk sending to all (it had not
// returned when the chunk began) but the answer is not recorded, and the
// next chunk skips the user; a lost key is not recreated as "none".
func TestDecideWriteDuringCheck(t *testing.T) {
	env := testenv.New(t)
	users := numbered(300)
	for i, tc := range []struct {
		step      string
		write     bool
		sentFirst bool
	}{
		{step: "count", write: true},
		{step: "set", write: true, sentFirst: true},
		{step: "set", sentFirst: true},
	} {
		app := int64(i + 1)
		pol := policy.New(policy.Config{Prefix: env.Prefix}, env.Redis, env.DB)
		var once sync.Once
		policy.SetTestHook(pol, func(step string) {
			if step != tc.step {
				return
			}
			once.Do(func() {
				if tc.write {
					writePreferences(t, env, pol, app, users[0], policy.Preferences{Categories: []string{"marketing"}})
				} else {
					require.NoError(t, env.Redis.Del(context.Background(), keyspace.PreferenceState(env.Prefix, app)).Err())
				}
			})
		})
		d, err := pol.Decide(context.Background(), uncapped(app, 1), users, noon)
		require.NoError(t, err)
		if tc.sentFirst {
			require.Equal(t, policy.Decision{Send: users}, d, tc.step)
		} else {
			require.Equal(t, optedOut(users), d, tc.step)
		}
		require.NotEqual(t, "none", state(t, env, app), tc.step)
		d, err = pol.Decide(context.Background(), uncapped(app, 2), users, noon)
		require.NoError(t, err)
		if tc.write {
			require.Equal(t, optedOut(users), d, tc.step)
		} else {
			require.Equal(t, policy.Decision{Send: users}, d)
			require.Equal(t, "none", state(t, env, app))
		}
	}
}

// Injects: an app found without preferences, then preferences inserted
// straight into MySQL (a bulk import) and policy.Rebuild. Checks: the next
// chunk honours them: opted-out users skipped, quiet ones dropped.
func TestDecideAfterBulkImport(t *testing.T) {
	env := testenv.New(t)
	pol := policy.New(policy.Config{Prefix: env.Prefix}, env.Redis, env.DB)
	users := numbered(300)
	_, skipped := decideSkipped(t, pol, uncapped(1, 1), users, noon)
	require.Equal(t, 1, skipped)
	preferUsers(t, env.DB, pol, 1, users) // rows, then Rebuild
	d, skipped := decideSkipped(t, pol, uncapped(1, 2), users, noon)
	require.Zero(t, skipped)
	want := wantDecision(users, 1)
	require.Equal(t, want, d)
	require.NotEmpty(t, want.Outcomes[policy.SkippedPreference])
}

// Injects: the loss of the state key (and of every preference hash) of an
// app with preferences, decided by a process that never saw the app, and
// of an app without any. Checks: the first is decided by the script
// (opt-outs and quiet hours hold, the shards rebuilt from MySQL) and its
// state says "some" again; the second is sent to all without the script
// and its state says "none" again.
func TestDecideStateLost(t *testing.T) {
	env, pol, users := preferred(t)
	ctx := context.Background()
	d, _ := decideSkipped(t, pol, uncapped(1, 1), users, noon)
	require.Equal(t, wantDecision(users, 1), d)
	_, skipped := decideSkipped(t, pol, uncapped(2, 1), users, noon)
	require.Equal(t, 1, skipped)
	require.Equal(t, "some", state(t, env, 1))
	require.Equal(t, "none", state(t, env, 2))

	keys, err := env.Redis.Keys(ctx, env.Prefix+"*prefs").Result()
	require.NoError(t, err)
	keys = append(keys, keyspace.PreferenceState(env.Prefix, 1), keyspace.PreferenceState(env.Prefix, 2))
	require.NoError(t, env.Redis.Del(ctx, keys...).Err())
	fresh := policy.New(policy.Config{Prefix: env.Prefix}, env.Redis, env.DB)
	d, skipped = decideSkipped(t, fresh, uncapped(1, 2), users, noon)
	require.Zero(t, skipped)
	require.Equal(t, wantDecision(users, 1), d)
	require.Equal(t, "some", state(t, env, 1))
	d, skipped = decideSkipped(t, fresh, uncapped(2, 2), users, noon)
	require.Equal(t, 1, skipped)
	require.Equal(t, policy.Decision{Send: users}, d)
	require.Equal(t, "none", state(t, env, 2))
}
