package inbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/keyspace"
)

func ids(ms []inbox.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func TestOccurrenceOf(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want int64
	}{
		{"o1042", 1042},
		{"o1042-for-alice", 1042},
		{inbox.ContactMessageID(7, "o9"), 7},
		{"x12", 0},
		{"o", 0},
		{"", 0},
	} {
		require.Equal(t, tc.want, inbox.OccurrenceOf(tc.id), tc.id)
	}
}

// A full inbox drops its oldest message for a new one, and says which.
func TestInboxCapDropsTheOldest(t *testing.T) {
	env := testenv.NewRedis(t)
	s := inbox.New(inbox.Config{Prefix: env.Prefix, Cap: 3, TTL: time.Hour}, env.Redis)
	ctx := context.Background()
	now := time.Now()
	var dropped []string
	for i, id := range []string{"o1", "o2", "o3", "o4", "o5"} {
		d, err := s.Add(ctx, 1, "u", inbox.Message{ID: id}, now.Add(time.Duration(i)*time.Second))
		require.NoError(t, err)
		dropped = append(dropped, d...)
	}
	require.Equal(t, []string{"o1", "o2"}, dropped)
	c, err := s.List(ctx, 1, "u", now.Add(5*time.Second))
	require.NoError(t, err)
	require.Equal(t, []string{"o3", "o4", "o5"}, ids(c.Pending))
	// A body is stored once per shard, however many of its users get it.
	var other string
	for i := 0; other == ""; i++ {
		if u := fmt.Sprintf("w%d", i); keyspace.UserShard(1, u) == keyspace.UserShard(1, "u") {
			other = u
		}
	}
	_, err = s.Add(ctx, 1, other, inbox.Message{ID: "o5"}, now.Add(5*time.Second))
	require.NoError(t, err)
	keys, err := env.Redis.Keys(ctx, env.Prefix+"*#m:o5").Result()
	require.NoError(t, err)
	require.Len(t, keys, 1)
	c, err = s.List(ctx, 1, other, now.Add(5*time.Second))
	require.NoError(t, err)
	require.Equal(t, []string{"o5"}, ids(c.Pending))
	// Another app's user of the same ID has an inbox of their own.
	c, err = s.List(ctx, 2, "u", now)
	require.NoError(t, err)
	require.Empty(t, c.Pending)
}

// A pending message is kept TTL and an unread one UnreadTTL: older ones are
// not listed and are dropped at the next store, and the keys expire the
// longer of the two after the last store (checked with a short TTL on
// Redis's own clock).
func TestInboxTTL(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	s := inbox.New(inbox.Config{Prefix: env.Prefix, TTL: time.Hour, UnreadTTL: 30 * time.Minute}, env.Redis)
	now := time.Now()
	_, err := s.Add(ctx, 1, "u", inbox.Message{ID: "o1"}, now.Add(-2*time.Hour))
	require.NoError(t, err)
	c, err := s.List(ctx, 1, "u", now)
	require.NoError(t, err)
	require.Empty(t, c.Pending, "a message older than the TTL is not listed")
	dropped, err := s.Add(ctx, 1, "u", inbox.Message{ID: "o2"}, now)
	require.NoError(t, err)
	require.Equal(t, []string{"o1"}, dropped)
	ttl, err := env.Redis.PTTL(ctx, keyspace.Shard(env.Prefix, 1, "u")+"inbox").Result()
	require.NoError(t, err)
	require.InDelta(t, time.Hour.Seconds(), ttl.Seconds(), 5)

	// Unread: acknowledged 45 minutes ago, past the unread TTL.
	_, err = s.Delivered(ctx, 1, "u", []string{"o2"}, now.Add(-45*time.Minute))
	require.NoError(t, err)
	c, err = s.List(ctx, 1, "u", now)
	require.NoError(t, err)
	require.Empty(t, c.Unread)
	dropped, err = s.Add(ctx, 1, "u", inbox.Message{ID: "o4"}, now)
	require.NoError(t, err)
	require.Equal(t, []string{"o2"}, dropped)

	short := inbox.New(inbox.Config{Prefix: env.Prefix, TTL: 300 * time.Millisecond, UnreadTTL: 200 * time.Millisecond}, env.Redis)
	_, err = short.Add(ctx, 1, "v", inbox.Message{ID: "o3"}, time.Now())
	require.NoError(t, err)
	testenv.WaitUntil(t, 5*time.Second, "the inbox expires", func() bool {
		n, err := env.Redis.Exists(ctx, keyspace.Shard(env.Prefix, 1, "v")+"inbox", keyspace.Shard(env.Prefix, 1, "v")+"m:o3").Result()
		return err == nil && n == 0
	})
}

// Acknowledging moves a message from pending to unread, a read receipt
// removes it from both; each change is reported once, and a message stored
// again after it was acknowledged (a repeated chunk) is not pending again.
func TestAcksAndReadReceipts(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	s := inbox.New(inbox.Config{Prefix: env.Prefix}, env.Redis)
	now := time.Now()
	for _, id := range []string{"o1", "o2", "o3"} {
		_, err := s.Add(ctx, 1, "u", inbox.Message{ID: id, Title: id}, now)
		require.NoError(t, err)
	}
	_, err := s.Add(ctx, 1, "u", inbox.Message{ID: "o1"}, now)
	require.NoError(t, err)

	changed, err := s.Apply(ctx, []inbox.Ack{
		{App: 1, User: "u", IDs: []string{"o1", "o2"}},
		{App: 1, User: "u", IDs: []string{"o1", "o9"}},
		{App: 1, User: "u", IDs: []string{"o3"}, Read: true},
	}, now)
	require.NoError(t, err)
	require.Equal(t, [][]string{{"o1", "o2"}, {}, {"o3"}}, changed)
	c, err := s.List(ctx, 1, "u", now)
	require.NoError(t, err)
	require.Empty(t, c.Pending)
	require.Equal(t, []string{"o1", "o2"}, ids(c.Unread))
	require.Equal(t, "o1", c.Unread[0].Title, "the body stored first is kept")

	_, err = s.Add(ctx, 1, "u", inbox.Message{ID: "o1"}, now)
	require.NoError(t, err)
	c, err = s.List(ctx, 1, "u", now)
	require.NoError(t, err)
	require.Empty(t, c.Pending, "an acknowledged message is not stored again")

	read, err := s.Read(ctx, 1, "u", []string{"o1", "o1", "o7"})
	require.NoError(t, err)
	require.Equal(t, []string{"o1"}, read)
	c, err = s.List(ctx, 1, "u", now)
	require.NoError(t, err)
	require.Equal(t, []string{"o2"}, ids(c.Unread))
}

// Announcements by cursor, with the oldest dropped past Keep.
func TestAnnouncementsCursor(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	a := inbox.NewAnnouncements(inbox.AnnouncementConfig{Prefix: env.Prefix, Keep: 3}, env.Redis)
	list, cursor, err := a.After(ctx, 1, "eu", -1, 10)
	require.NoError(t, err)
	require.Empty(t, list)
	require.Zero(t, cursor)
	for i := 1; i <= 5; i++ {
		an, err := a.Post(ctx, 1, "eu", inbox.Announcement{Title: "t"})
		require.NoError(t, err)
		require.EqualValues(t, i, an.ID)
	}
	list, cursor, err = a.After(ctx, 1, "eu", -1, 10)
	require.NoError(t, err)
	require.Empty(t, list, "a new client starts at the newest")
	require.EqualValues(t, 5, cursor)
	list, cursor, err = a.After(ctx, 1, "eu", 0, 10)
	require.NoError(t, err)
	require.Len(t, list, 3, "only the last three are kept")
	require.EqualValues(t, 3, list[0].ID)
	require.EqualValues(t, 5, cursor)
	list, cursor, err = a.After(ctx, 1, "eu", 3, 1)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.EqualValues(t, 4, cursor)
}
