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

	d, err := r.User(ctx, 1, "b", 10, inbox.OccurrenceOf)
	require.NoError(t, err)
	require.Len(t, d, 1)
	require.Equal(t, status.Delivered, d[0].State, "a late sent does not undo delivered")
	require.EqualValues(t, 1, d[0].Occurrence)

	for i := 2; i <= 5; i++ {
		require.NoError(t, r.Record(ctx, []status.Entry{e("a", fmt.Sprintf("o%d", i), status.Sent)}, now.Add(time.Duration(i)*time.Second)))
	}
	d, err = r.User(ctx, 1, "a", 10, inbox.OccurrenceOf)
	require.NoError(t, err)
	require.Equal(t, []string{"o5", "o4", "o3"}, []string{d[0].Message, d[1].Message, d[2].Message}, "newest first, capped at 3")
	ttl, err := env.Redis.PTTL(ctx, keyspace.Shard(env.Prefix, 1, "a")+"st").Result()
	require.NoError(t, err)
	require.InDelta(t, time.Hour.Seconds(), ttl.Seconds(), 5)
}
