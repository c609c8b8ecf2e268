package inbox_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/internal/rscript"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/presence"
	"github.com/chime-dev/chime/status"
)

// BenchmarkDeliverAndAck drives what a delivered and acknowledged online
// user costs Redis, without the rest of a fire: chunks of 500 or 5,000 fresh users
// of one app, all online, stored with their presence read and their status
// recorded, then acknowledged in batches of 1,000, as the online sender and
// a gateway do. "tracked" is one script per shard for each (inbox.Track),
// "separate" the passes of their own (an HMGET of presence per shard, a
// status script per shard after the store and after the acks). Besides
// ns/op (an op is one user) it reports Redis's CPU time per user (INFO cpu;
// other work on the same Redis counts too: give it a redis-server of its
// own).
func BenchmarkDeliverAndAck(b *testing.B) {
	for _, run := range []struct {
		mode  string
		chunk int
	}{{"separate", 500}, {"tracked", 500}, {"separate", 5000}, {"tracked", 5000}} {
		mode, chunk := run.mode, run.chunk
		b.Run(fmt.Sprintf("%s/chunk=%d", mode, chunk), func(b *testing.B) {
			env := testenv.New(b)
			ctx := context.Background()
			reg := presence.New(presence.Config{Prefix: env.Prefix, TTL: time.Hour}, env.Redis)
			in := inbox.New(inbox.Config{Prefix: env.Prefix}, env.Redis)
			st := status.New(status.Config{Prefix: env.Prefix}, env.Redis, nil)
			users := make([]string, b.N)
			conns := make([]presence.Conn, b.N)
			for i := range users {
				users[i] = "user-" + strconv.Itoa(i)
				conns[i] = presence.Conn{App: 1, User: users[i], Instance: "g1", ID: "c" + strconv.Itoa(i)}
			}
			for i := 0; i < len(conns); i += 1000 {
				if err := reg.Register(ctx, conns[i:min(i+1000, len(conns))]...); err != nil {
					b.Fatal(err)
				}
			}
			scripts := append(presence.Scripts(), inbox.Scripts()...)
			body := []byte(`{"id":"o1","occurrence":1,"title":"T","body":"B"}`)
			b.ResetTimer()
			cpu0 := redisCPU(b, env.Redis)
			now := time.Now()
			for i := 0; i < len(users); i += chunk {
				part := users[i:min(i+chunk, len(users))]
				items := make([]inbox.Item, len(part))
				for j, u := range part {
					items[j] = inbox.Item{User: u, ID: "o1", Body: body}
				}
				var a *inbox.Added
				var l *presence.Lookups
				track := inbox.Track{Presence: reg, Status: st}
				if mode == "separate" {
					track = inbox.Track{}
				}
				if _, err := rscript.Pipelined(ctx, env.Redis, scripts, func(p redis.Pipeliner) {
					a = in.AddCmds(ctx, p, 1, items, now, track)
					if mode == "separate" {
						l = reg.LookupCmds(ctx, p, 1, part)
					}
				}); err != nil {
					b.Fatal(err)
				}
				if mode == "separate" {
					var entries []status.Entry
					for j, inst := range l.Instances() {
						if len(inst) == 0 {
							b.Fatalf("%s offline", part[j])
						}
						entries = append(entries, status.Entry{App: 1, User: part[j], Message: "o1", Occurrence: 1, Channel: status.Gateway, State: status.Sent})
					}
					if err := st.Record(ctx, entries, now); err != nil {
						b.Fatal(err)
					}
				} else if entries, _ := a.Status(); len(entries) != len(part) {
					b.Fatalf("%d entries for %d users", len(entries), len(part))
				}
			}
			for i := 0; i < len(users); i += 1000 {
				part := users[i:min(i+1000, len(users))]
				acks := make([]inbox.Ack, len(part))
				for j, u := range part {
					acks[j] = inbox.Ack{App: 1, User: u, IDs: []string{"o1"}}
				}
				if mode == "separate" {
					changed, err := in.Apply(ctx, acks, now)
					if err != nil {
						b.Fatal(err)
					}
					var entries []status.Entry
					for j, ids := range changed {
						for _, id := range ids {
							entries = append(entries, status.Entry{App: 1, User: part[j], Message: id, Occurrence: 1, Channel: status.Gateway, State: status.Delivered})
						}
					}
					if err := st.Record(ctx, entries, now); err != nil {
						b.Fatal(err)
					}
				} else if _, err := in.ApplyTracked(ctx, acks, now, inbox.Track{Status: st}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric((redisCPU(b, env.Redis)-cpu0)/float64(b.N), "redis-cpu-µs/user")
			d, err := st.User(ctx, 1, users[len(users)-1], 10, inbox.OccurrenceOf)
			if err != nil || len(d) != 1 || d[0].State != status.Delivered {
				b.Fatalf("status of the last user: %v, %v", d, err)
			}
		})
	}
}

// redisCPU is Redis's CPU time so far, in µs (INFO cpu, user and system).
func redisCPU(b *testing.B, rdb *redis.Client) float64 {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var us float64
	for _, line := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			s, _ := strconv.ParseFloat(v, 64)
			us += s * 1e6
		}
	}
	return us
}
