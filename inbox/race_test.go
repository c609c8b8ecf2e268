package inbox_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/internal/testenv"
)

// between runs fn once, right after the first pipeline whose first command
// is name has run: another writer acting between a read and its writes.
type between struct {
	name string
	fn   func()
	done bool
}

func (b *between) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (b *between) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (b *between) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if !b.done && len(cmds) > 0 && strings.EqualFold(cmds[0].Name(), b.name) {
			b.done = true
			b.fn()
		}
		return err
	}
}

// storeWithHook returns a store on a client of its own, whose pipelines
// starting with name are followed once by fn (run through env's client).
func storeWithHook(t *testing.T, env *testenv.Env, cfg inbox.Config, name string, fn func()) *inbox.Store {
	t.Helper()
	opt, err := redis.ParseURL(env.RedisURL)
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	rdb.AddHook(&between{name: name, fn: fn})
	cfg.Prefix = env.Prefix
	return inbox.New(cfg, rdb)
}

// Injected: the user's hash is deleted (as an expiry or a store emptying
// it would) after an ack read it and before the ack's writes. Checked:
// the ack's write, which creates the hash again, gives it an expiry, for a
// read receipt and for a delivery ack alike; without one the hash would
// stay in Redis for good.
func TestAckOnAVanishedHashGivesItAnExpiry(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	now := time.Now()
	for _, read := range []bool{true, false} {
		user := map[bool]string{true: "r", false: "d"}[read]
		key := inboxKey(env.Prefix, user)
		s := storeWithHook(t, env, inbox.Config{TTL: time.Hour}, "hmget", func() {
			require.NoError(t, env.Redis.Del(ctx, key).Err())
		})
		_, err := s.Add(ctx, 1, user, inbox.Message{ID: "o1"}, now)
		require.NoError(t, err)
		var changed []string
		if read {
			changed, err = s.Read(ctx, 1, user, []string{"o1"}, now)
		} else {
			changed, err = s.Delivered(ctx, 1, user, []string{"o1"}, now)
		}
		require.NoError(t, err)
		require.Equal(t, []string{"o1"}, changed, "read %v", read)
		ttl, err := env.Redis.PTTL(ctx, key).Result()
		require.NoError(t, err)
		require.Positive(t, ttl, "read %v: the hash written again expires", read)
	}
}

// Injected: a store's try that wrote the user's entry but failed before
// its expiry (PERSIST takes the expiry away). Checked: the chunk stored
// again, which has nothing new to write, gives the hash its expiry.
func TestStoreAgainHealsAMissingExpiry(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	s := inbox.New(inbox.Config{Prefix: env.Prefix, TTL: time.Hour, UnreadTTL: time.Hour}, env.Redis)
	now := time.Now()
	_, err := s.Add(ctx, 1, "u", inbox.Message{ID: "o1"}, now)
	require.NoError(t, err)
	key := inboxKey(env.Prefix, "u")
	require.True(t, env.Redis.Persist(ctx, key).Val())
	_, err = s.Add(ctx, 1, "u", inbox.Message{ID: "o1"}, now)
	require.NoError(t, err)
	ttl, err := env.Redis.PTTL(ctx, key).Result()
	require.NoError(t, err)
	require.InDelta(t, time.Hour.Seconds(), ttl.Seconds(), 5)
	c, err := s.List(ctx, 1, "u", now)
	require.NoError(t, err)
	require.Equal(t, []string{"o1"}, ids(c.Pending), "stored once")
}

// A message past its TTL has left the inbox: acknowledging it, one by one
// or all at once, or reading it changes and reports nothing.
func TestAcksPastTheTTLChangeNothing(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	s := inbox.New(inbox.Config{Prefix: env.Prefix, TTL: time.Hour, UnreadTTL: time.Hour}, env.Redis)
	now := time.Now()
	_, err := s.Add(ctx, 1, "u", inbox.Message{ID: "o1"}, now.Add(-2*time.Hour))
	require.NoError(t, err)
	_, err = s.Add(ctx, 1, "u", inbox.Message{ID: "o2"}, now.Add(-2*time.Hour))
	require.NoError(t, err)
	all, err := s.Delivered(ctx, 1, "u", nil, now)
	require.NoError(t, err)
	require.Empty(t, all)
	one, err := s.Delivered(ctx, 1, "u", []string{"o1"}, now)
	require.NoError(t, err)
	require.Empty(t, one)
	read, err := s.Read(ctx, 1, "u", []string{"o2"}, now)
	require.NoError(t, err)
	require.Empty(t, read)
	c, err := s.List(ctx, 1, "u", now)
	require.NoError(t, err)
	require.Empty(t, c.Pending)
	require.Empty(t, c.Unread)
}

// Injected: between the reads and the writes of a batch of acks, one
// user's hash is replaced by a string, so that the writes to it fail
// (WRONGTYPE) while the others' succeed. Checked: Apply returns the error
// and also the change it made for the other user, which a retry would not
// report again.
func TestApplyReportsTheWritesMadeBeforeAnError(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	bad := inboxKey(env.Prefix, "v")
	s := storeWithHook(t, env, inbox.Config{TTL: time.Hour}, "hmget", func() {
		require.NoError(t, env.Redis.Set(ctx, bad, "not a hash", time.Minute).Err())
	})
	now := time.Now()
	for _, u := range []string{"u", "v"} {
		_, err := s.Add(ctx, 1, u, inbox.Message{ID: "o1"}, now)
		require.NoError(t, err)
	}
	changed, err := s.Apply(ctx, []inbox.Ack{{App: 1, User: "u", IDs: []string{"o1"}}, {App: 1, User: "v", IDs: []string{"o1"}}}, now)
	require.ErrorContains(t, err, "WRONGTYPE")
	require.Equal(t, [][]string{{"o1"}, {}}, changed)
	again, err := s.Delivered(ctx, 1, "u", []string{"o1"}, now)
	require.NoError(t, err)
	require.Empty(t, again, "the change was made once, and reported then")
}
