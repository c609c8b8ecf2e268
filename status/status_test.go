package status_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/keyspace"
	"github.com/chime-dev/chime/status"
)

// Counts add up across calls in MySQL; the detail keeps the latest state,
// never an earlier one; the detail is capped per user and expires.
func TestRecord(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	r := status.New(status.Config{Prefix: env.Prefix, PerUser: 3, Retention: time.Hour}, env.Redis, env.DB)
	now := time.Now()
	e := func(user, msg, state string) status.Entry {
		return status.Entry{App: 1, User: user, Message: msg, Occurrence: inbox.OccurrenceOf(msg), Channel: status.Gateway, State: state}
	}
	require.NoError(t, r.Record(ctx, []status.Entry{e("a", "o1", status.Sent), e("b", "o1", status.Sent)}, now))
	require.NoError(t, r.Record(ctx, []status.Entry{e("a", "o1", status.Delivered)}, now.Add(time.Millisecond)))
	require.NoError(t, r.Record(ctx, []status.Entry{e("b", "o1", status.Delivered), e("b", "o1", status.Sent)}, now.Add(2*time.Millisecond)))
	counts, err := status.Counts(ctx, env.DB, 1)
	require.NoError(t, err)
	require.Equal(t, map[string]map[string]int64{status.Gateway: {status.Sent: 2, status.Delivered: 2}}, counts, "b's second sent is a repeat, not counted")

	d, err := r.User(ctx, 1, "b", 10, inbox.OccurrenceOf, nil)
	require.NoError(t, err)
	require.Len(t, d, 1)
	require.Equal(t, status.Delivered, d[0].State, "a late sent does not undo delivered")
	require.EqualValues(t, 1, d[0].Occurrence)

	for i := 2; i <= 5; i++ {
		require.NoError(t, r.Record(ctx, []status.Entry{e("a", fmt.Sprintf("o%d", i), status.Sent)}, now.Add(time.Duration(i)*time.Second)))
	}
	d, err = r.User(ctx, 1, "a", 10, inbox.OccurrenceOf, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"o5", "o4", "o3"}, []string{d[0].Message, d[1].Message, d[2].Message}, "newest first, capped at 3")
	ttl, err := env.Redis.PTTL(ctx, keyspace.Shard(env.Prefix, 1, "a")+"st:a").Result()
	require.NoError(t, err)
	require.InDelta(t, time.Hour.Seconds(), ttl.Seconds(), 5)
}

// A user's lines run oldest first and an updated entry moves to the end:
// with a cap of 3, updating the oldest entry keeps it when a fourth comes,
// and the one dropped is the least recently updated; a repeat of an
// earlier state after a later one counts nothing and changes nothing.
func TestRecordKeepsTheRecentlyUpdated(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	r := status.New(status.Config{Prefix: env.Prefix, PerUser: 3, Retention: time.Hour}, env.Redis, env.DB)
	now := time.Now()
	e := func(msg, state string) status.Entry {
		return status.Entry{App: 1, User: "a", Message: msg, Occurrence: inbox.OccurrenceOf(msg), Channel: status.Gateway, State: state}
	}
	for i, m := range []string{"o11", "o12", "o13"} {
		require.NoError(t, r.Record(ctx, []status.Entry{e(m, status.Sent)}, now.Add(time.Duration(i)*time.Second)))
	}
	require.NoError(t, r.Record(ctx, []status.Entry{e("o11", status.Delivered), e("o11", status.Sent)}, now.Add(3*time.Second)))
	require.NoError(t, r.Record(ctx, []status.Entry{e("o14", status.Sent)}, now.Add(4*time.Second)))
	d, err := r.User(ctx, 1, "a", 10, inbox.OccurrenceOf, nil)
	require.NoError(t, err)
	got := make([]string, len(d))
	for i, x := range d {
		got[i] = x.Message + " " + x.State
	}
	require.Equal(t, []string{"o14 sent", "o11 delivered", "o13 sent"}, got)
	counts, err := status.Counts(ctx, env.DB, 11)
	require.NoError(t, err)
	require.Equal(t, map[string]map[string]int64{status.Gateway: {status.Sent: 1, status.Delivered: 1}}, counts)
}

// A user's detail expires Retention after its last update, on Redis's own
// clock (a short Retention here); and a hash that passes 4 × PerUser
// fields is trimmed to PerUser entries, the least recently updated
// dropped first, those older than Retention whatever their number.
func TestRecordTrimsAndExpires(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	e := func(user, msg, state string) status.Entry {
		return status.Entry{App: 1, User: user, Message: msg, Channel: status.Gateway, State: state}
	}
	key := func(user string) string { return keyspace.Shard(env.Prefix, 1, user) + "st:" + user }

	short := status.New(status.Config{Prefix: env.Prefix, Retention: 300 * time.Millisecond}, env.Redis, nil)
	require.NoError(t, short.Record(ctx, []status.Entry{e("a", "m1", status.Sent)}, time.Now()))
	ttl, err := env.Redis.PTTL(ctx, key("a")).Result()
	require.NoError(t, err)
	require.Positive(t, ttl)
	require.LessOrEqual(t, ttl, 300*time.Millisecond)
	testenv.WaitUntil(t, 5*time.Second, "the detail expires", func() bool {
		n, err := env.Redis.Exists(ctx, key("a")).Result()
		return err == nil && n == 0
	})

	r := status.New(status.Config{Prefix: env.Prefix, PerUser: 2, Retention: time.Hour}, env.Redis, nil)
	t0 := time.Now()
	// m0 is older than Retention; m1..m4 sent and delivered: 9 fields,
	// more than 4 × 2, so the last record trims.
	require.NoError(t, r.Record(ctx, []status.Entry{e("b", "m0", status.Sent)}, t0.Add(-2*time.Hour)))
	for i := 1; i <= 4; i++ {
		m := fmt.Sprintf("m%d", i)
		require.NoError(t, r.Record(ctx, []status.Entry{e("b", m, status.Sent)}, t0.Add(time.Duration(i)*time.Second)))
		n, err := env.Redis.HLen(ctx, key("b")).Result()
		require.NoError(t, err)
		require.EqualValues(t, 2*i, n, "not trimmed while at most 8 fields")
		require.NoError(t, r.Record(ctx, []status.Entry{e("b", m, status.Delivered)}, t0.Add(time.Duration(i)*time.Second+time.Millisecond)))
	}
	fields, err := env.Redis.HKeys(ctx, key("b")).Result()
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"m3|gateway|sent", "m3|gateway|delivered", "m4|gateway|sent", "m4|gateway|delivered"}, fields,
		"m0 (past Retention), then m1 and m2 (least recently updated) dropped until 2 entries remain")
	d, err := r.User(ctx, 1, "b", 10, inbox.OccurrenceOf, nil)
	require.NoError(t, err)
	require.Len(t, d, 2)
	require.Equal(t, "m4", d[0].Message, "newest first")
	require.Equal(t, status.Delivered, d[0].State)
	require.Equal(t, t0.Add(4*time.Second+time.Millisecond).UnixMilli(), d[0].UpdatedAt.UnixMilli())
}

// Injected: a user's inbox marks (one message sent over the gateway when
// stored and acknowledged over the socket, one stored offline, replayed,
// then read through the API, one stored offline and expired since) and a
// detail kept here (a push and the expiry). Checked: per (message,
// channel), the highest state and when, from both; an expired message
// stays expired on the inbox channel; Count adds to the aggregates only,
// every entry it is given.
func TestUserMergesInboxMarks(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	r := status.New(status.Config{Prefix: env.Prefix}, env.Redis, env.DB)
	t0 := time.UnixMilli(time.Now().UnixMilli()).UTC()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	require.NoError(t, r.Record(ctx, []status.Entry{
		{App: 1, User: "u", Message: "o2", Occurrence: 2, Channel: status.Push, State: status.Sent},
		{App: 1, User: "u", Message: "o3", Occurrence: 3, Channel: status.Inbox, State: status.Expired},
	}, at(1)))
	marks := []inbox.Mark{
		{ID: "o1", Stored: at(0), StoredOnline: true, Sent: at(0), Acked: at(2), AckedOverGateway: true},
		{ID: "o2", Stored: at(0), Sent: at(3), Read: at(4)},
		{ID: "o3", Stored: at(0), Read: at(1)},
	}
	d, err := r.User(ctx, 1, "u", 10, inbox.OccurrenceOf, marks)
	require.NoError(t, err)
	got := map[string]status.Detail{}
	for _, x := range d {
		got[x.Message+" "+x.Channel] = x
	}
	want := map[string]status.Detail{
		"o1 gateway": {Message: "o1", Occurrence: 1, Channel: status.Gateway, State: status.Delivered, UpdatedAt: at(2)},
		"o2 gateway": {Message: "o2", Occurrence: 2, Channel: status.Gateway, State: status.Sent, UpdatedAt: at(3)},
		"o2 inbox":   {Message: "o2", Occurrence: 2, Channel: status.Inbox, State: status.Read, UpdatedAt: at(4)},
		"o2 push":    {Message: "o2", Occurrence: 2, Channel: status.Push, State: status.Sent, UpdatedAt: at(1)},
		"o3 inbox":   {Message: "o3", Occurrence: 3, Channel: status.Inbox, State: status.Expired, UpdatedAt: at(1)},
	}
	require.Equal(t, want, got)
	require.Equal(t, "o2", d[0].Message, "newest first")
	require.Equal(t, status.Inbox, d[0].Channel)

	require.NoError(t, r.Count(ctx, []status.Entry{
		{App: 1, User: "u", Message: "o1", Occurrence: 1, Channel: status.Gateway, State: status.Sent},
		{App: 1, User: "v", Message: "o1", Occurrence: 1, Channel: status.Gateway, State: status.Sent},
	}))
	counts, err := status.Counts(ctx, env.DB, 1)
	require.NoError(t, err)
	require.Equal(t, map[string]map[string]int64{status.Gateway: {status.Sent: 2}}, counts)
	n, err := env.Redis.Exists(ctx, keyspace.Shard(env.Prefix, 1, "v")+"st:v").Result()
	require.NoError(t, err)
	require.Zero(t, n, "Count writes no detail")
}
