package online_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/presence"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/sender/online"
	"github.com/chime-dev/chime/status"
)

// recorder is a fallback channel that refuses the users in refuse.
type recorder struct {
	mu     sync.Mutex
	users  []string
	refuse map[string]bool
}

func (r *recorder) Send(_ context.Context, b *sender.Batch) (sender.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.users = append(r.users, b.Users...)
	var res sender.Result
	for _, u := range b.Users {
		if r.refuse[u] {
			res.Failed++
			res.FailedUsers = append(res.FailedUsers, u)
		}
	}
	return res, nil
}

type contacts map[string][]string

func (c contacts) ContactsOf(_ context.Context, _ int64, users []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, u := range users {
		if len(c[u]) > 0 {
			out[u] = c[u]
		}
	}
	return out, nil
}

type fixture struct {
	env    *testenv.Env
	reg    *presence.Registry
	inbox  *inbox.Store
	status *status.Recorder
	fb     *recorder
	s      *online.Sender
}

func setup(t *testing.T, c contacts) *fixture {
	env := testenv.NewRedis(t)
	f := &fixture{env: env, fb: &recorder{refuse: map[string]bool{"refused": true}},
		reg:    presence.New(presence.Config{Prefix: env.Prefix, TTL: time.Minute}, env.Redis),
		inbox:  inbox.New(inbox.Config{Prefix: env.Prefix}, env.Redis),
		status: status.New(status.Config{Prefix: env.Prefix}, env.Redis, nil)}
	f.s = online.New(online.Config{Prefix: env.Prefix}, env.Redis, f.reg, f.inbox, f.status, c, f.fb, clock.Real{}, env.Log)
	return f
}

// online registers user on instance, whose stream exists as a running
// gateway's would.
func (f *fixture) online(t *testing.T, instance, user string) {
	ctx := context.Background()
	require.NoError(t, f.env.Redis.XAdd(ctx, xadd(presence.StreamKey(f.env.Prefix, instance))).Err())
	require.NoError(t, f.reg.Register(ctx, presence.Conn{App: 1, User: user, Instance: instance, ID: user + "-c"}))
}

// published returns, per user, the message IDs in instance's stream.
func (f *fixture) published(t *testing.T, instance string) map[string][]string {
	entries, err := f.env.Redis.XRange(context.Background(), presence.StreamKey(f.env.Prefix, instance), "-", "+").Result()
	require.NoError(t, err)
	out := map[string][]string{}
	for _, e := range entries {
		raw, ok := e.Values["e"].(string)
		if !ok {
			continue
		}
		var env presence.Envelope
		require.NoError(t, json.Unmarshal([]byte(raw), &env))
		var m inbox.Message
		require.NoError(t, json.Unmarshal(env.Message, &m))
		for _, u := range env.Users {
			out[u] = append(out[u], m.ID)
		}
	}
	return out
}

func (f *fixture) detail(t *testing.T, user string) map[string]string {
	marks, err := f.inbox.Marks(context.Background(), 1, user)
	require.NoError(t, err)
	d, err := f.status.User(context.Background(), 1, user, 100, inbox.OccurrenceOf, marks)
	require.NoError(t, err)
	out := map[string]string{}
	for _, x := range d {
		out[x.Message+" "+x.Channel] = x.State
	}
	return out
}

// Online users get one stream entry per gateway that holds them; offline
// users go to the fallback, refused ones are failed; everyone's inbox holds
// the message; the status says which way each went.
func TestSendSplitsOnlineAndOffline(t *testing.T) {
	f := setup(t, nil)
	f.online(t, "g1", "a")
	f.online(t, "g1", "b")
	f.online(t, "g2", "b") // a second device
	f.online(t, "g2", "c")
	b := &sender.Batch{Message: message.Message{App: 1, Occurrence: 7, Reminder: "r", Title: "T"}, Users: []string{"a", "b", "c", "d", "refused"}}
	res, err := f.s.Send(context.Background(), b)
	require.NoError(t, err)
	require.Equal(t, sender.Result{Failed: 1, FailedUsers: []string{"refused"}, Online: 3, Offline: 2}, res)
	require.Equal(t, map[string][]string{"a": {"o7"}, "b": {"o7"}}, f.published(t, "g1"))
	require.Equal(t, map[string][]string{"b": {"o7"}, "c": {"o7"}}, f.published(t, "g2"))
	require.Equal(t, []string{"d", "refused"}, f.fb.users)
	for _, u := range b.Users {
		c, err := f.inbox.List(context.Background(), 1, u, time.Now())
		require.NoError(t, err)
		require.Len(t, c.Pending, 1, u)
	}
	require.Equal(t, map[string]string{"o7 gateway": status.Sent}, f.detail(t, "a"))
	require.Equal(t, map[string]string{"o7 inbox": status.Pending, "o7 push": status.Sent}, f.detail(t, "d"))
	require.Equal(t, map[string]string{"o7 inbox": status.Pending, "o7 push": status.Failed}, f.detail(t, "refused"))

	// The same chunk again (a retry after a crash): stored once.
	_, err = f.s.Send(context.Background(), b)
	require.NoError(t, err)
	c, err := f.inbox.List(context.Background(), 1, "d", time.Now())
	require.NoError(t, err)
	require.Len(t, c.Pending, 1)
}

// Injects: a chunk whose users opted out of channels: an online user and
// an offline one out of the inbox, an offline one out of push. Checks: the
// inbox opt-outs are neither stored nor published, and go to the fallback
// (push) whether online or not; the push opt-out keeps the inbox copy and
// is not handed to the fallback; the others are as without opt-outs.
func TestSendHonoursChannelOptOuts(t *testing.T) {
	f := setup(t, nil)
	f.online(t, "g1", "a")
	f.online(t, "g1", "no-inbox-online")
	b := &sender.Batch{Message: message.Message{App: 1, Occurrence: 8, Reminder: "r", Title: "T"},
		Users:   []string{"a", "d", "no-inbox-online", "no-inbox", "no-push"},
		Exclude: map[string][]string{"no-inbox-online": {sender.ChannelInbox}, "no-inbox": {sender.ChannelInbox}, "no-push": {sender.ChannelPush}}}
	res, err := f.s.Send(context.Background(), b)
	require.NoError(t, err)
	require.Equal(t, 1, res.Online)
	require.Equal(t, map[string][]string{"a": {"o8"}}, f.published(t, "g1"))
	require.ElementsMatch(t, []string{"d", "no-inbox-online", "no-inbox"}, f.fb.users)
	for u, want := range map[string]int{"a": 1, "d": 1, "no-push": 1, "no-inbox": 0, "no-inbox-online": 0} {
		c, err := f.inbox.List(context.Background(), 1, u, time.Now())
		require.NoError(t, err)
		require.Len(t, c.Pending, want, u)
	}
	require.Equal(t, map[string]string{"o8 inbox": status.Pending}, f.detail(t, "no-push"))
}

// Deliver-when-online: offline users are not pushed. A gateway whose stream
// is gone (it died and its stream expired) gets nothing, and does not get
// its stream back; the message waits in the inbox.
func TestDeliverWhenOnlineAndDeadGateway(t *testing.T) {
	f := setup(t, nil)
	f.online(t, "dead", "a")
	require.NoError(t, f.env.Redis.Del(context.Background(), presence.StreamKey(f.env.Prefix, "dead")).Err())
	res, err := f.s.Send(context.Background(), &sender.Batch{Message: message.Message{App: 1, Occurrence: 8, DeliverWhenOnline: true}, Users: []string{"a", "b"}})
	require.NoError(t, err)
	require.Equal(t, 1, res.Online)
	require.Empty(t, f.fb.users)
	n, err := f.env.Redis.Exists(context.Background(), presence.StreamKey(f.env.Prefix, "dead")).Result()
	require.NoError(t, err)
	require.Zero(t, n, "publishing does not re-create a dead gateway's stream")
	for _, u := range []string{"a", "b"} {
		c, err := f.inbox.List(context.Background(), 1, u, time.Now())
		require.NoError(t, err)
		require.Equal(t, "o8", c.Pending[0].ID, u)
	}
}

// Contacts of offline users get a copy marked for_user: online ones over
// their gateway, offline ones in their inbox.
func TestContactsOfOfflineUsers(t *testing.T) {
	f := setup(t, contacts{"grandpa": {"daughter", "son"}, "online": {"x"}})
	f.online(t, "g1", "daughter")
	f.online(t, "g1", "online")
	_, err := f.s.Send(context.Background(), &sender.Batch{Message: message.Message{App: 1, Occurrence: 9, NotifyContacts: true, DeliverWhenOnline: true}, Users: []string{"grandpa", "online"}})
	require.NoError(t, err)
	pub := f.published(t, "g1")
	require.Equal(t, []string{"o9-for-grandpa"}, pub["daughter"])
	require.Equal(t, []string{"o9"}, pub["online"])
	require.NotContains(t, pub, "x")
	c, err := f.inbox.List(context.Background(), 1, "son", time.Now())
	require.NoError(t, err)
	require.Len(t, c.Pending, 1)
	require.Equal(t, "grandpa", c.Pending[0].ForUser)
	c, err = f.inbox.List(context.Background(), 1, "x", time.Now())
	require.NoError(t, err)
	require.Empty(t, c.Pending)
	require.True(t, slices.Equal(f.fb.users, nil))
}

func xadd(stream string) *redis.XAddArgs {
	return &redis.XAddArgs{Stream: stream, Values: []any{"hb", "1"}}
}

// connectAfterRead is a hook that, after the first pipeline reading
// inboxes (the sender's first round trip), runs connect once: a user
// connecting between the sender's two reads of presence.
type connectAfterRead struct {
	once    sync.Once
	connect func()
}

func (h *connectAfterRead) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *connectAfterRead) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (h *connectAfterRead) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if len(cmds) > 0 && cmds[0].Name() == "hgetall" {
			h.once.Do(h.connect)
		}
		return err
	}
}

// Injected: user "late" connects after the sender read the chunk's inboxes
// and presence, before it stores (a hook on the sender's Redis client
// registers the connection then); "early" was online from the start,
// "off" never. Checked: late's message is published to its gateway and
// marked sent, so its detail shows inbox pending (stored while offline)
// then gateway sent; the counts have every user once, in the state of the
// read that decided where the message went; a retry counts nothing more.
func TestUserConnectingBetweenTheReads(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	reg := presence.New(presence.Config{Prefix: env.Prefix, TTL: time.Minute}, env.Redis)
	in := inbox.New(inbox.Config{Prefix: env.Prefix}, env.Redis)
	st := status.New(status.Config{Prefix: env.Prefix}, env.Redis, env.DB)
	require.NoError(t, env.Redis.XAdd(ctx, xadd(presence.StreamKey(env.Prefix, "g1"))).Err())
	require.NoError(t, reg.Register(ctx, presence.Conn{App: 1, User: "early", Instance: "g1", ID: "c-early"}))
	rdb := redis.NewClient(env.Redis.Options())
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.AddHook(&connectAfterRead{connect: func() {
		require.NoError(t, reg.Register(ctx, presence.Conn{App: 1, User: "late", Instance: "g1", ID: "c-late"}))
	}})
	fb := &recorder{}
	s := online.New(online.Config{Prefix: env.Prefix}, rdb, presence.New(presence.Config{Prefix: env.Prefix, TTL: time.Minute}, rdb),
		inbox.New(inbox.Config{Prefix: env.Prefix}, rdb), status.New(status.Config{Prefix: env.Prefix}, rdb, env.DB), nil, fb, clock.Real{}, env.Log)
	b := &sender.Batch{Message: message.Message{App: 1, Occurrence: 21, Reminder: "r", Title: "T"}, Users: []string{"early", "late", "off"}}
	for attempt := range 2 {
		res, err := s.Send(ctx, b)
		require.NoError(t, err)
		require.Equal(t, 2, res.Online, "attempt %d", attempt)
		counts, err := status.Counts(ctx, env.DB, 21)
		require.NoError(t, err)
		require.Equal(t, map[string]map[string]int64{
			status.Gateway: {status.Sent: 2}, status.Inbox: {status.Pending: 1}, status.Push: {status.Sent: 1},
		}, counts, "attempt %d", attempt)
	}
	f := &fixture{env: env, inbox: in, status: st}
	pub := f.published(t, "g1")
	require.Equal(t, []string{"o21", "o21"}, pub["late"], "published on both attempts")
	require.Equal(t, map[string]string{"o21 inbox": status.Pending, "o21 gateway": status.Sent}, f.detail(t, "late"))
	require.Equal(t, map[string]string{"o21 gateway": status.Sent}, f.detail(t, "early"))
	require.Equal(t, map[string]string{"o21 inbox": status.Pending, "o21 push": status.Sent}, f.detail(t, "off"))
}
