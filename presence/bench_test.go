package presence_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/presence"
)

// BenchmarkRefresh is a gateway's heartbeat pass over 10,000 connections
// of as many users (one connection each): each iteration refreshes them
// all, in one call or in calls of 1,000. The iterations are a heartbeat
// apart, a third of the TTL as with the defaults (1s and 3s here, so that
// the index is dated as often as it is in a gateway). It reports Redis's
// time per refreshed connection, inside the scripts (INFO commandstats,
// evalsha usec, which counts the commands they run twice) and as process
// CPU (INFO cpu, which counts everything else the server did meanwhile, so
// run it against a Redis of its own), and the scripts and index writes
// (ZADD) per pass.
func BenchmarkRefresh(b *testing.B) {
	for _, batch := range []int{10000, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchmarkRefresh(b, batch) })
	}
}

func benchmarkRefresh(b *testing.B, batch int) {
	env := testenv.NewRedis(b)
	ctx := context.Background()
	const heartbeat = time.Second
	r := presence.New(presence.Config{Prefix: env.Prefix, TTL: 3 * heartbeat}, env.Redis)
	const n = 10000
	conns := make([]presence.Conn, n)
	for i := range conns {
		conns[i] = presence.Conn{App: 1, User: "user-" + strconv.Itoa(i), Instance: "gw-bench", ID: fmt.Sprintf("%016x", i)}
	}
	if err := r.Register(ctx, conns...); err != nil {
		b.Fatal(err)
	}
	before := redisTime(b, env.Redis)
	start := time.Now()
	b.ResetTimer()
	for i := range b.N {
		if i > 0 {
			b.StopTimer()
			time.Sleep(time.Until(start.Add(time.Duration(i) * heartbeat)))
			b.StartTimer()
		}
		for c := range slices.Chunk(conns, batch) {
			missing, err := r.Refresh(ctx, c)
			if err != nil {
				b.Fatal(err)
			}
			if len(missing) > 0 {
				b.Fatalf("%d connections missing", len(missing))
			}
		}
	}
	b.StopTimer()
	after := redisTime(b, env.Redis)
	per := float64(b.N * n)
	b.ReportMetric(float64(after.script-before.script)/per, "script-µs/conn")
	b.ReportMetric(float64(after.cpu-before.cpu)/per, "cpu-µs/conn")
	b.ReportMetric(float64(after.calls-before.calls)/float64(b.N), "scripts/pass")
	b.ReportMetric(float64(after.zadds-before.zadds)/float64(b.N), "zadds/pass")
}

type redisTimes struct{ script, cpu, calls, zadds int64 }

// redisTime reads Redis's time in EVALSHA and its CPU time, in µs, and its
// EVALSHA and ZADD calls.
func redisTime(b *testing.B, rdb *redis.Client) redisTimes {
	info, err := rdb.Info(context.Background(), "commandstats", "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var t redisTimes
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "cmdstat_evalsha:"); ok {
			t.script, t.calls = stat(rest, "usec"), stat(rest, "calls")
		}
		if rest, ok := strings.CutPrefix(line, "cmdstat_zadd:"); ok {
			t.zadds = stat(rest, "calls")
		}
		for _, k := range []string{"used_cpu_sys:", "used_cpu_user:"} {
			if v, ok := strings.CutPrefix(line, k); ok {
				f, _ := strconv.ParseFloat(v, 64)
				t.cpu += int64(f * 1e6)
			}
		}
	}
	return t
}

// stat is the value of name in a commandstats line's "k=v,..." list.
func stat(list, name string) int64 {
	for _, kv := range strings.Split(list, ",") {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}
