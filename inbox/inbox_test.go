package inbox_test

import (
	"context"
	"fmt"
	"slices"
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

// inboxKey is the hash of a user's entries.
func inboxKey(prefix, user string) string { return keyspace.Shard(prefix, 1, user) + "ib:" + user }

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
	ttl, err := env.Redis.PTTL(ctx, inboxKey(env.Prefix, "u")).Result()
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
		n, err := env.Redis.Exists(ctx, inboxKey(env.Prefix, "v"), keyspace.Shard(env.Prefix, 1, "v")+"m:o3").Result()
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

	read, err := s.Read(ctx, 1, "u", []string{"o1", "o1", "o7"}, now)
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

// The scripts find an entry by its ID as a string: an ID that ends another
// (o1 in xo1, in "a o1", and o1 against o11) must not be taken for it. The
// test stores such IDs, acknowledges, reads and stores again only o1, and
// checks that every other entry is untouched; an ID with a line break is
// not stored and matches nothing.
func TestInboxIDsThatEndOthers(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	s := inbox.New(inbox.Config{Prefix: env.Prefix}, env.Redis)
	now := time.Now()
	for i, id := range []string{"o11", "xo1", "a o1", "o1", "o1 b"} {
		_, err := s.Add(ctx, 1, "u", inbox.Message{ID: id}, now.Add(time.Duration(i)*time.Millisecond))
		require.NoError(t, err)
	}
	moved, err := s.Delivered(ctx, 1, "u", []string{"o1"}, now)
	require.NoError(t, err)
	require.Equal(t, []string{"o1"}, moved)
	c, err := s.List(ctx, 1, "u", now)
	require.NoError(t, err)
	require.Equal(t, []string{"o11", "xo1", "a o1", "o1 b"}, ids(c.Pending))
	require.Equal(t, []string{"o1"}, ids(c.Unread))

	_, err = s.Add(ctx, 1, "u", inbox.Message{ID: "o1"}, now)
	require.NoError(t, err)
	read, err := s.Read(ctx, 1, "u", []string{"o1", "b", "o", "1", "o1\np"}, now)
	require.NoError(t, err)
	require.Equal(t, []string{"o1"}, read)
	c, err = s.List(ctx, 1, "u", now)
	require.NoError(t, err)
	require.Equal(t, []string{"o11", "xo1", "a o1", "o1 b"}, ids(c.Pending))
	require.Empty(t, c.Unread)

	_, err = s.Add(ctx, 1, "u", inbox.Message{ID: "o2\np 1 o3"}, now)
	require.NoError(t, err)
	c, err = s.List(ctx, 1, "u", now)
	require.NoError(t, err)
	require.Equal(t, []string{"o11", "xo1", "a o1", "o1 b"}, ids(c.Pending), "an ID with a line break is not stored")
}

// Acks of IDs the user does not have (unknown, another user's, already
// unread, already read) change nothing and report nothing, and leave the
// user's hash field for field as it was.
func TestInboxAckOfUnknownIDs(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	s := inbox.New(inbox.Config{Prefix: env.Prefix}, env.Redis)
	now := time.Now()
	for _, id := range []string{"o1", "o2"} {
		_, err := s.Add(ctx, 1, "u", inbox.Message{ID: id}, now)
		require.NoError(t, err)
	}
	_, err := s.Add(ctx, 1, "v", inbox.Message{ID: "o3"}, now)
	require.NoError(t, err)
	_, err = s.Delivered(ctx, 1, "u", []string{"o2"}, now)
	require.NoError(t, err)
	field := func() map[string]string {
		v, err := env.Redis.HGetAll(ctx, inboxKey(env.Prefix, "u")).Result()
		require.NoError(t, err)
		require.Len(t, v, 3, "o1 stored, o2 stored and acknowledged")
		return v
	}
	before := field()
	changed, err := s.Apply(ctx, []inbox.Ack{
		{App: 1, User: "u", IDs: []string{"o9", "o3", "o2", ""}},
		{App: 1, User: "u", IDs: []string{"o9", "o3"}, Read: true},
		{App: 1, User: "nobody", IDs: []string{"o1"}},
		{App: 1, User: "nobody"},
	}, now.Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, [][]string{{}, {}, {}, {}}, changed)
	require.Equal(t, before, field())
	n, err := env.Redis.Exists(ctx, inboxKey(env.Prefix, "nobody")).Result()
	require.NoError(t, err)
	require.Zero(t, n, "an ack for a user without an inbox stores nothing")
}

// A user with many entries: 250 messages into a cap of 100 keep the
// newest 100 pending and report the 150 oldest dropped, in order; acking
// every pending one (no IDs) makes all 100 unread; 30 more acknowledged one
// by one leave the newest 100 unread listed, and the next store drops the
// older ones (the unread cap); read receipts for a scattered few remove
// just those; the hash keeps at most three fields per message and none
// for those dropped.
func TestInboxManyEntries(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	s := inbox.New(inbox.Config{Prefix: env.Prefix, Cap: 100}, env.Redis)
	now := time.Now()
	id := func(i int) string { return fmt.Sprintf("o%d", i) }
	span := func(from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, id(i))
		}
		return out
	}
	var dropped []string
	for i := range 250 {
		d, err := s.Add(ctx, 1, "u", inbox.Message{ID: id(i)}, now.Add(time.Duration(i)*time.Millisecond))
		require.NoError(t, err)
		dropped = append(dropped, d...)
	}
	require.Equal(t, span(0, 150), dropped)
	c, err := s.List(ctx, 1, "u", now.Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, span(150, 250), ids(c.Pending))

	moved, err := s.Delivered(ctx, 1, "u", nil, now.Add(time.Second))
	require.NoError(t, err)
	require.Equal(t, span(150, 250), moved)
	for i := 250; i < 280; i++ {
		_, err := s.Add(ctx, 1, "u", inbox.Message{ID: id(i)}, now.Add(time.Second))
		require.NoError(t, err)
		_, err = s.Delivered(ctx, 1, "u", []string{id(i)}, now.Add(2*time.Second+time.Duration(i)*time.Millisecond))
		require.NoError(t, err)
	}
	c, err = s.List(ctx, 1, "u", now.Add(3*time.Second))
	require.NoError(t, err)
	require.Empty(t, c.Pending)
	require.Equal(t, span(180, 280), ids(c.Unread), "a list shows the newest Cap")
	d, err := s.Add(ctx, 1, "u", inbox.Message{ID: id(280)}, now.Add(3*time.Second))
	require.NoError(t, err)
	require.Equal(t, []string{id(179)}, d, "a store drops the unread over the cap")

	read, err := s.Read(ctx, 1, "u", []string{id(180), id(200), id(279), id(100)}, now.Add(3*time.Second))
	require.NoError(t, err)
	require.Equal(t, []string{id(180), id(200), id(279)}, read)
	c, err = s.List(ctx, 1, "u", now.Add(3*time.Second))
	require.NoError(t, err)
	want := slices.DeleteFunc(span(180, 279), func(x string) bool { return x == id(180) || x == id(200) })
	require.Equal(t, want, ids(c.Unread))
	require.Equal(t, []string{id(280)}, ids(c.Pending))
	fields, err := env.Redis.HKeys(ctx, inboxKey(env.Prefix, "u")).Result()
	require.NoError(t, err)
	// 100 unread (stored, acknowledged), o280 stored, three of them read.
	require.Len(t, fields, 2*100+1+3)
	for _, f := range fields {
		require.Regexp(t, `^[sdr]:o(18\d|19\d|2[0-7]\d|280)$`, f, "o179 and older are gone")
	}
}
