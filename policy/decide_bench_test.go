package policy_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/policy"
)

// BenchmarkDecide decides chunks of 400 users of the bench's policy run
// (10% opted out of the category, 10% in quiet hours, a cap of 3 a day):
// 100 chunks a pass, a new occurrence each pass. In "first" the cap
// hashes are dropped before every pass (no user counted yet, as at the
// bench's fire); in "counted" every third pass, so users carry 0 to 2
// counted occurrences. "uncapped" is the same reminder without a cap (the
// script reads preferences only), "none" that reminder for an app without
// preferences, whose chunks are decided without the script. "first" and
// "counted" spread each chunk over all 64 shards, as a group of a small
// location does; "first-one-shard" decides chunks whose users are all of
// one shard, as the groups of a location of more than 64 groups are
// (package grouping hashes users with the same xxHash, so a power-of-two
// count of groups of at least 64 puts each group in one shard).
// Besides ns/op it reports Redis's CPU time per chunk (INFO cpu; other
// clients of a shared Redis add to it, so measure on a Redis of its own).
func BenchmarkDecide(b *testing.B) {
	env := testenv.New(b)
	const app, chunk, chunks = 1, 400, 100
	users := make([]string, chunk*chunks)
	for i := range users {
		users[i] = strconv.Itoa(i + 1)
	}
	pol := policy.New(policy.Config{Prefix: env.Prefix}, env.Redis, env.DB)
	preferUsers(b, env.DB, pol, app, users)
	m := message.Message{App: app, Reminder: "bench", Zone: "Europe/London",
		Policy: &message.Policy{Category: "marketing", Drop: true, CapMax: 3, CapWindow: 24 * time.Hour}}
	for _, bc := range []struct {
		name  string
		every int
	}{{"first", 1}, {"counted", 3}} {
		b.Run(bc.name, func(b *testing.B) { decidePasses(b, env, pol, m, users, chunk, bc.every) })
	}
	const oneShardApp = app + 2
	var one []string
	for i := 0; len(one) < len(users); i++ {
		if u := strconv.Itoa(i + 1); policy.Shard(oneShardApp, u) == 0 {
			one = append(one, u)
		}
	}
	preferUsers(b, env.DB, pol, oneShardApp, one)
	oneShard := m
	oneShard.App = oneShardApp
	b.Run("first-one-shard", func(b *testing.B) { decidePasses(b, env, pol, oneShard, one, chunk, 1) })
	plain := m
	plain.Policy = &message.Policy{Category: "marketing", Drop: true}
	b.Run("uncapped", func(b *testing.B) { decidePasses(b, env, pol, plain, users, chunk, 0) })
	plain.App = app + 1
	b.Run("none", func(b *testing.B) { decidePasses(b, env, pol, plain, users, chunk, 0) })
}

// decidePasses decides b.N chunks of users, dropping the cap hashes every
// every passes (never for 0).
func decidePasses(b *testing.B, env *testenv.Env, pol *policy.Policy, m message.Message, users []string, chunk, every int) {
	ctx := context.Background()
	chunks := len(users) / chunk
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	usec0 := redisCPU(b, env)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		pass := i / chunks
		if every > 0 && i%chunks == 0 && pass%every == 0 {
			b.StopTimer()
			keys, _ := env.Redis.Keys(ctx, env.Prefix+"*cap:*").Result()
			if len(keys) > 0 {
				env.Redis.Del(ctx, keys...)
			}
			b.StartTimer()
		}
		m.Occurrence = int64(1000*every + pass + 1)
		c := i % chunks
		if _, err := pol.Decide(ctx, m, users[c*chunk:(c+1)*chunk], now); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric((redisCPU(b, env)-usec0)/float64(b.N), "redis-cpu-µs/op")
}

// redisCPU reads the CPU time Redis has used, in µs.
func redisCPU(b *testing.B, env *testenv.Env) float64 {
	info, err := env.Redis.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	for _, l := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, _ := strconv.ParseFloat(v, 64)
			sum += f
		}
	}
	return sum * 1e6
}
