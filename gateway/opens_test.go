package gateway_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/deliveryevent"
	"github.com/chime-dev/chime/gateway"
	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/keyspace"
	"github.com/chime-dev/chime/store"
)

// lateOpens is the gateway's open counter, made once the fixture's servers
// are known.
type lateOpens struct{ o *deliveryevent.Opens }

func (l *lateOpens) Read(ctx context.Context, app int64, user string, ids []string, of func(string) int64, now time.Time) {
	l.o.Read(ctx, app, user, ids, of, now)
}

// connect connects user, whose replayed messages come before the welcome.
func connect(t *testing.T, f *fixture, user string) *gateway.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := gateway.Dial(ctx, f.url, f.token(t, f.key, user, time.Hour), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.CloseNow() })
	for fr := range c.Frames {
		if fr.Type == "welcome" {
			break
		}
	}
	return c
}

// Injected: read receipts over the gateway from two users of one
// occurrence's message, one of them sent twice, and a receipt for a
// message that names no occurrence. Checked: the occurrence counts two
// opens, each user once.
func TestReadReceiptsAreOpens(t *testing.T) {
	late := &lateOpens{}
	f := start(t, withConfig(func(c *gateway.Config) { c.Opens = late }))
	late.o = deliveryevent.NewOpens(deliveryevent.OpensConfig{Prefix: f.env.Prefix}, f.env.Redis, f.env.DB, nil, f.env.Log)
	ctx := context.Background()
	rem := store.Reminder{AppID: f.app, Key: "fajr", Title: "Fajr", Groups: 1}
	require.NoError(t, f.env.DB.Create(&rem).Error)
	loc := store.Location{AppID: f.app, Name: "jakarta", Zone: "Asia/Jakarta"}
	require.NoError(t, f.env.DB.Create(&loc).Error)
	occ := store.Occurrence{ReminderID: rem.ID, LocationID: loc.ID, FireAt: time.Now().UTC(), ExpiresAt: time.Now().UTC().Add(time.Hour), State: store.OccDone}
	require.NoError(t, f.env.DB.Create(&occ).Error)
	msg := fmt.Sprintf("o%d", occ.ID)

	in := inbox.New(inbox.Config{Prefix: f.env.Prefix}, f.env.Redis)
	for _, u := range []string{"alice", "bob"} {
		for _, id := range []string{msg, "announcement-1"} {
			_, err := in.Add(ctx, f.app, u, inbox.Message{ID: id}, time.Now())
			require.NoError(t, err)
		}
		c := connect(t, f, u)
		require.NoError(t, c.Read(ctx, msg, "announcement-1"))
		require.NoError(t, c.Read(ctx, msg))
	}
	opens := func() int64 {
		var o store.Occurrence
		require.NoError(t, f.env.DB.First(&o, occ.ID).Error)
		return o.Opens
	}
	testenv.WaitUntil(t, 10*time.Second, "two opens counted", func() bool { return opens() == 2 })
	// Alice's message comes again and she reads it again: not a new open.
	// Receipts are applied in order, so once carol's (sent after alice's
	// was applied) is counted, alice's has been too.
	_, err := in.Add(ctx, f.app, "alice", inbox.Message{ID: msg}, time.Now())
	require.NoError(t, err)
	c := connect(t, f, "alice")
	require.NoError(t, c.Read(ctx, msg))
	testenv.WaitUntil(t, 10*time.Second, "alice's second receipt applied", func() bool {
		got, err := in.List(ctx, f.app, "alice", time.Now())
		require.NoError(t, err)
		return len(got.Pending)+len(got.Unread) == 0
	})
	_, err = in.Add(ctx, f.app, "carol", inbox.Message{ID: msg}, time.Now())
	require.NoError(t, err)
	require.NoError(t, connect(t, f, "carol").Read(ctx, msg))
	testenv.WaitUntil(t, 10*time.Second, "carol's open counted", func() bool { return opens() >= 3 })
	require.EqualValues(t, 3, opens(), "alice counted once")
	member, err := f.env.Redis.SIsMember(ctx, keyspace.Opens(f.env.Prefix, occ.ID), "carol").Result()
	require.NoError(t, err)
	require.True(t, member)
}
