package online_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/keyspace"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/presence"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/sender/online"
	"github.com/chime-dev/chime/status"
)

// commands counts the commands a client sends to Redis, by name.
type commands struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *commands) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.count(cmd); return next(ctx, cmd) }
}
func (c *commands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.count(cmd)
		}
		return next(ctx, cmds)
	}
}
func (c *commands) count(cmd redis.Cmder) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[strings.ToLower(cmd.Name())]++
}
func (c *commands) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}

// A chunk of 500 users, half of them online on one gateway, on real Redis
// and MariaDB. Checked: every user's inbox holds the message, the online
// half is published to its gateway and the offline half goes to the
// fallback; Redis sees plain commands only, a bounded few per user (one
// read of each user's inbox, at most 6 commands per user in all, the push
// fallback's status detail included) and no script; the counts are right,
// and sending the same
// chunk again (a retry after a worker crash) stores no body and no inbox
// entry twice and counts nothing twice.
func TestChunkCostsBoundedCommandsAndCountsOnceUnderRetry(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	cmds := &commands{n: map[string]int{}}
	env.Redis.AddHook(cmds)
	reg := presence.New(presence.Config{Prefix: env.Prefix, TTL: time.Minute}, env.Redis)
	in := inbox.New(inbox.Config{Prefix: env.Prefix}, env.Redis)
	st := status.New(status.Config{Prefix: env.Prefix}, env.Redis, env.DB)
	fb := &recorder{}
	s := online.New(online.Config{Prefix: env.Prefix}, env.Redis, reg, in, st, nil, fb, clock.Real{}, env.Log)

	users := make([]string, 500)
	var conns []presence.Conn
	for i := range users {
		users[i] = fmt.Sprintf("user-%d", i)
		if i%2 == 0 {
			conns = append(conns, presence.Conn{App: 1, User: users[i], Instance: "g1", ID: "c" + users[i]})
		}
	}
	require.NoError(t, env.Redis.XAdd(ctx, xadd(presence.StreamKey(env.Prefix, "g1"))).Err())
	require.NoError(t, reg.Register(ctx, conns...))
	_, err := s.Send(ctx, &sender.Batch{Message: message.Message{App: 1, Occurrence: 10, Reminder: "r", Title: "T"}, Users: []string{"warm-up"}})
	require.NoError(t, err)
	fb.users = nil
	cmds.reset()

	b := &sender.Batch{Message: message.Message{App: 1, Occurrence: 11, Reminder: "r", Title: "T"}, Users: users}
	var first map[string]int
	for attempt := range 2 {
		res, err := s.Send(ctx, b)
		require.NoError(t, err)
		require.Equal(t, 250, res.Online)
		require.Equal(t, 250, res.Offline)
		n := cmds.reset()
		total := 0
		for _, c := range n {
			total += c
		}
		require.LessOrEqual(t, total, 6*len(users), "attempt %d: %v", attempt, n)
		require.Equal(t, len(users), n["hgetall"], "one inbox read per user, attempt %d: %v", attempt, n)
		require.Zero(t, n["evalsha"]+n["eval"], "attempt %d: %v", attempt, n)
		if attempt == 0 {
			require.Positive(t, n["set"], "bodies stored: %v", n)
			first = n
		} else {
			require.Zero(t, n["set"], "no body stored twice: %v", n)
			require.Equal(t, first["hsetnx"]-len(users), n["hsetnx"], "no inbox entry stored twice: %v / %v", first, n)
		}
		counts, err := status.Counts(ctx, env.DB, 11)
		require.NoError(t, err)
		require.Equal(t, map[string]map[string]int64{
			status.Gateway: {status.Sent: 250}, status.Inbox: {status.Pending: 250}, status.Push: {status.Sent: 250},
		}, counts, "attempt %d", attempt)
	}
	for _, u := range []string{users[0], users[1], users[499]} {
		c, err := in.List(ctx, 1, u, time.Now())
		require.NoError(t, err)
		require.Len(t, c.Pending, 1, u)
	}
	require.Len(t, fb.users, 500, "the offline half, twice")
}

// The same chunk on a 3-master Redis Cluster: the chunk's plain commands
// (inbox, presence, streams, the push fallback's status detail) reach
// their keys' masters from pipelines that mix slots, acks apply, and the
// users' keys land on several masters.
func TestChunkOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	url := testenv.RedisCluster(t, 3)
	ctx := context.Background()
	rdb, err := chime.OpenRedis(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { rdb.Close() })
	log := testenv.Logger(t)
	reg := presence.New(presence.Config{TTL: time.Minute}, rdb)
	in := inbox.New(inbox.Config{}, rdb)
	st := status.New(status.Config{}, rdb, nil)
	s := online.New(online.Config{}, rdb, reg, in, st, nil, &recorder{}, clock.Real{}, log)
	users := make([]string, 300)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
		if i%3 == 0 {
			require.NoError(t, reg.Register(ctx, presence.Conn{App: 1, User: users[i], Instance: "g1", ID: "c"}))
		}
	}
	require.NoError(t, rdb.XAdd(ctx, xadd(presence.StreamKey(keyspace.DefaultPrefix, "g1"))).Err())
	res, err := s.Send(ctx, &sender.Batch{Message: message.Message{App: 1, Occurrence: 3, Title: "T"}, Users: users})
	require.NoError(t, err)
	require.Equal(t, 100, res.Online)
	changed, err := in.Apply(ctx, []inbox.Ack{{App: 1, User: "u0", IDs: []string{"o3"}}, {App: 1, User: "u1", IDs: []string{"o3"}, Read: true}}, time.Now())
	require.NoError(t, err)
	require.Equal(t, [][]string{{"o3"}, {"o3"}}, changed)
	cc := rdb.(*redis.ClusterClient)
	var masters sync.Map
	require.NoError(t, cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		if n > 0 {
			masters.Store(m.Options().Addr, n)
		}
		return err
	}))
	var holding int
	masters.Range(func(any, any) bool { holding++; return true })
	require.Greater(t, holding, 1, "users' keys on more than one master")
}
