package online_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	"github.com/chime-dev/chime/store"
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

// lostReply runs the first pipeline that holds a command named name and
// then fails it, as a connection lost before the replies came back would:
// Redis applied the writes, the try does not know it.
type lostReply struct {
	name string
	done atomic.Bool
}

func (h *lostReply) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *lostReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *lostReply) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if c.Name() == h.name && h.done.CompareAndSwap(false, true) {
				return errors.New("injected: the replies were lost")
			}
		}
		return err
	}
}

// failingFallback refuses the whole send once.
type failingFallback struct {
	recorder
	failed atomic.Bool
}

func (f *failingFallback) Send(ctx context.Context, b *sender.Batch) (sender.Result, error) {
	if f.failed.CompareAndSwap(false, true) {
		return sender.Result{}, errors.New("injected: the push channel is down")
	}
	return f.recorder.Send(ctx, b)
}

// A chunk of a group run whose tries fail at two points, on real Redis and
// MariaDB:
//   - the first try's store is applied by Redis but its replies are lost
//     (a dropped connection; a worker that died right after its store is
//     the same to the counts): it counts nothing;
//   - the second counts the chunk and then fails in its push fallback;
//   - the third goes through.
//
// A fourth try, cut otherwise (a user left the chunk, one joined it), counts
// only the user who joined.
//
// Checked: after the second try the counts are there, whole, though that
// try stored nothing itself (before CountChunk they were lost: a try
// counted only what it stored); the third counts nothing more; the run
// records the chunk's last user.
func TestChunkCountedOnceWhateverTryStoredIt(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	const occ, group = 31, 2
	require.NoError(t, env.DB.Create(&store.GroupRun{OccurrenceID: occ, GroupNo: group, State: store.RunQueued, Attempts: 1, QueuedAt: time.Now()}).Error)
	rdb := redis.NewClient(env.Redis.Options())
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.AddHook(&lostReply{name: "hsetnx"})
	reg := presence.New(presence.Config{Prefix: env.Prefix, TTL: time.Minute}, rdb)
	require.NoError(t, env.Redis.XAdd(ctx, xadd(presence.StreamKey(env.Prefix, "g1"))).Err())
	users := []string{"u1", "u2", "u3", "u4", "u5", "u6"}
	for _, u := range users[:3] {
		require.NoError(t, reg.Register(ctx, presence.Conn{App: 1, User: u, Instance: "g1", ID: "c-" + u}))
	}
	fb := &failingFallback{}
	s := online.New(online.Config{Prefix: env.Prefix}, rdb, reg, inbox.New(inbox.Config{Prefix: env.Prefix}, rdb),
		status.New(status.Config{Prefix: env.Prefix}, rdb, env.DB), nil, fb, clock.Real{}, env.Log)
	b := &sender.Batch{Message: message.Message{App: 1, Occurrence: occ, Group: group, Reminder: "r", Title: "T"}, Users: users}
	want := map[string]map[string]int64{status.Gateway: {status.Sent: 3}, status.Inbox: {status.Pending: 3}}

	_, err := s.Send(ctx, b)
	require.ErrorContains(t, err, "injected: the replies were lost")
	counts, err := status.Counts(ctx, env.DB, occ)
	require.NoError(t, err)
	require.Empty(t, counts, "the first try stored, then stopped before counting")

	_, err = s.Send(ctx, b)
	require.ErrorContains(t, err, "injected: the push channel is down")
	counts, err = status.Counts(ctx, env.DB, occ)
	require.NoError(t, err)
	require.Equal(t, want, counts, "counted by the second try, from what the first stored")

	res, err := s.Send(ctx, b)
	require.NoError(t, err)
	require.Equal(t, 3, res.Online)
	counts, err = status.Counts(ctx, env.DB, occ)
	require.NoError(t, err)
	want[status.Push] = map[string]int64{status.Sent: 3}
	require.Equal(t, want, counts, "the third counts its pushes and nothing again")
	var run store.GroupRun
	require.NoError(t, env.DB.Where("occurrence_id = ? AND group_no = ?", occ, group).First(&run).Error)
	require.Equal(t, "u6", run.CountedThrough)
	require.ElementsMatch(t, users[3:], fb.users)

	// A fourth try cut otherwise: u1 left the chunk, u7 (offline) joined
	// it, and it now ends past the last user counted. Only u7 counts.
	b.Users = append(slices.Clone(users[1:]), "u7")
	_, err = s.Send(ctx, b)
	require.NoError(t, err)
	counts, err = status.Counts(ctx, env.DB, occ)
	require.NoError(t, err)
	want[status.Inbox][status.Pending], want[status.Push][status.Sent] = 4, 4
	require.Equal(t, want, counts, "the users counted before count nothing more")
	require.NoError(t, env.DB.Where("occurrence_id = ? AND group_no = ?", occ, group).First(&run).Error)
	require.Equal(t, "u7", run.CountedThrough)
}
