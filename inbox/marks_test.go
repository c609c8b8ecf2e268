package inbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/keyspace"
)

// store stores id for user through Prepare and Cmds, as the online sender
// does, with the user online or not, and reports whether it was a first
// store.
func store(t *testing.T, s *inbox.Store, rdb redis.UniversalClient, user, id string, online bool, now time.Time) bool {
	t.Helper()
	ctx := context.Background()
	body, err := inbox.Encode(inbox.Message{ID: id}, now)
	require.NoError(t, err)
	a, err := s.Prepare(ctx, 1, []inbox.Item{{User: user, ID: id, Body: body}}, now, nil)
	require.NoError(t, err)
	_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		a.Cmds(ctx, p, now, []bool{online})
		return nil
	})
	require.NoError(t, err)
	return a.Stored(0)
}

// Injected: messages stored for a user online (sent over the gateway at
// once) and offline, acks over the socket and through the API, a replay of
// the offline one, a replay repeated, a store repeated. Checked: Stored
// is true for the first store only; Marks tells each message's channel
// and times; MarkSent reports a message sent over a gateway for the first
// time only (not one stored online, not a second replay); the fields'
// values still parse for lists and acks.
func TestMarksTellTheChannel(t *testing.T) {
	env := testenv.NewRedis(t)
	s := inbox.New(inbox.Config{Prefix: env.Prefix}, env.Redis)
	ctx := context.Background()
	t0 := time.UnixMilli(time.Now().UnixMilli())

	require.True(t, store(t, s, env.Redis, "u", "o1", true, t0))
	require.False(t, store(t, s, env.Redis, "u", "o1", false, t0.Add(time.Second)), "a store repeated stores nothing")
	require.True(t, store(t, s, env.Redis, "u", "o2", false, t0.Add(2*time.Second)))
	require.True(t, store(t, s, env.Redis, "u", "o3", false, t0.Add(3*time.Second)))

	first, err := s.MarkSent(ctx, 1, "u", []string{"o1", "o2", "gone"}, t0.Add(4*time.Second))
	require.NoError(t, err)
	require.Equal(t, []string{"o2"}, first, "o1 was sent when stored; gone is not in the inbox")
	again, err := s.MarkSent(ctx, 1, "u", []string{"o2"}, t0.Add(5*time.Second))
	require.NoError(t, err)
	require.Empty(t, again, "a second replay is not a first send")

	changed, err := s.Apply(ctx, []inbox.Ack{
		{App: 1, User: "u", IDs: []string{"o1", "o2"}, Gateway: true},
		{App: 1, User: "u", IDs: []string{"o3"}},
		{App: 1, User: "u", IDs: []string{"o2"}, Read: true, Gateway: true},
	}, t0.Add(6*time.Second))
	require.NoError(t, err)
	require.Equal(t, [][]string{{"o1", "o2"}, {"o3"}, {"o2"}}, changed)

	marks, err := s.Marks(ctx, 1, "u")
	require.NoError(t, err)
	at := func(d time.Duration) time.Time { return t0.Add(d).UTC() }
	require.Equal(t, []inbox.Mark{
		{ID: "o1", Stored: at(0), StoredOnline: true, Sent: at(0), Acked: at(6 * time.Second), AckedOverGateway: true},
		{ID: "o2", Stored: at(2 * time.Second), Sent: at(4 * time.Second), Acked: at(6 * time.Second), AckedOverGateway: true,
			Read: at(6 * time.Second), ReadOverGateway: true},
		{ID: "o3", Stored: at(3 * time.Second), Acked: at(6 * time.Second)},
	}, marks)

	c, err := s.List(ctx, 1, "u", t0.Add(7*time.Second))
	require.NoError(t, err)
	require.Equal(t, []string{"o1", "o3"}, ids(c.Unread), "marked values list as before")
	require.Empty(t, c.Pending)
}

// Injected: a replay mark left for a message a store then dropped (an
// orphan "g:" field). Checked: the next store drops it with the message's
// other fields, and Marks does not show it.
func TestOrphanSentMarkIsDropped(t *testing.T) {
	env := testenv.NewRedis(t)
	s := inbox.New(inbox.Config{Prefix: env.Prefix, Cap: 1}, env.Redis)
	ctx := context.Background()
	now := time.Now()
	key := keyspace.Shard(env.Prefix, 1, "u") + "ib:u"
	require.True(t, store(t, s, env.Redis, "u", "o1", false, now))
	require.NoError(t, env.Redis.HSet(ctx, key, "g:o9", "1").Err())
	require.True(t, store(t, s, env.Redis, "u", "o2", false, now.Add(time.Second)))
	fields, err := env.Redis.HKeys(ctx, key).Result()
	require.NoError(t, err)
	require.Equal(t, []string{"s:o2"}, fields, "o1 dropped over the cap of 1, the orphan mark with it")
	marks, err := s.Marks(ctx, 1, "u")
	require.NoError(t, err)
	require.Len(t, marks, 1)
	require.Equal(t, "o2", marks[0].ID)
}
