package deliveryevent_test

import (
	"context"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/deliveryevent"
	"github.com/chime-dev/chime/deliveryevent/deliveryeventtest"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/keyspace"
	"github.com/chime-dev/chime/netguard"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/store"
)

// bundle is a recorder and what a dispatcher needs, on real Redis and
// MariaDB, with loopback endpoints allowed.
type bundle struct {
	t       *testing.T
	env     *testenv.Env
	keyring *seal.Keyring
	rec     *deliveryevent.Recorder
}

func setup(t *testing.T) *bundle {
	t.Helper()
	env := testenv.New(t)
	spec, err := seal.NewKey("t1")
	require.NoError(t, err)
	k, err := seal.Parse(spec)
	require.NoError(t, err)
	rec := deliveryevent.NewRecorder(deliveryevent.RecorderConfig{Prefix: env.Prefix, Refresh: 50 * time.Millisecond}, env.Redis, env.DB, env.Log)
	return &bundle{t: t, env: env, keyring: k, rec: rec}
}

// app creates an app whose endpoint is r.
func (b *bundle) app(name string, r *deliveryeventtest.Receiver) int64 {
	b.t.Helper()
	a, _, _, err := store.CreateApp(context.Background(), b.env.DB, name, "")
	require.NoError(b.t, err)
	sealed, err := b.keyring.Seal([]byte(r.Secret()), store.DeliveryEventSecretAAD(a.ID))
	require.NoError(b.t, err)
	_, err = store.PutDeliveryEventEndpoint(context.Background(), b.env.DB, store.DeliveryEventEndpoint{AppID: a.ID, URL: r.URL(), Secret: sealed})
	require.NoError(b.t, err)
	return a.ID
}

// dispatch runs a dispatcher named consumer with short waits until the test
// ends.
func (b *bundle) dispatch(consumer string, tweak func(*deliveryevent.Config)) {
	b.t.Helper()
	cfg := deliveryevent.Config{
		Prefix: b.env.Prefix, Consumer: consumer, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		Poll: 10 * time.Millisecond, Refresh: 50 * time.Millisecond, ClaimIdle: time.Minute, Timeout: 5 * time.Second,
		Guard: netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}), Keyring: b.keyring,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	d := deliveryevent.NewDispatcher(cfg, b.env.Redis, b.env.DB, b.env.Log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	b.t.Cleanup(func() { cancel(); require.NoError(b.t, <-done) })
}

// chunk is a chunk of n users u<first>... of occurrence occ, the users
// spread over delivered, failed and expired.
func chunk(app, occ int64, group, first, n int) deliveryevent.Chunk {
	out := map[string][]string{}
	for i := range n {
		t := deliveryevent.Types[i%3]
		out[t] = append(out[t], "u"+strconv.Itoa(first+i))
	}
	return deliveryevent.Chunk{App: app, Reminder: "r", Occurrence: occ, Location: "jakarta", Group: &group, Outcomes: out}
}

// streamLen is how many entries the app's stream holds.
func (b *bundle) streamLen(app int64) int64 {
	n, err := b.env.Redis.XLen(context.Background(), keyspace.DeliveryEvents(b.env.Prefix, app)).Result()
	require.NoError(b.t, err)
	return n
}

// Injected: the endpoint refuses the first POSTs (503) and then loses the
// answers of two POSTs whose events it kept (500), and one chunk is
// recorded twice (a chunk a worker sent again). Checked: every event
// arrives; the copies carry the IDs of their first copies (same type, user
// and occurrence); every POST's signature verifies with the Standard
// Webhooks library; no POST carries more than BatchEvents events' worth of
// merged entries; the stream is empty once all is posted.
func TestEndpointThatFailsThenRecoversLosesNoEvent(t *testing.T) {
	b := setup(t)
	r := deliveryeventtest.New()
	t.Cleanup(r.Close)
	app := b.app("a", r)
	r.Refuse(3)
	r.LoseAnswers(2)
	ctx := context.Background()
	const chunks, size = 12, 30
	for i := range chunks {
		require.NoError(t, b.rec.Record(ctx, chunk(app, 7, i, i*size, size)))
	}
	require.NoError(t, b.rec.Record(ctx, chunk(app, 7, 0, 0, size))) // chunk 0 again
	b.dispatch("d1", func(c *deliveryevent.Config) { c.BatchEvents = 100 })

	testenv.WaitUntil(t, 30*time.Second, "every event posted and the stream empty", func() bool {
		return r.Stats().Distinct == chunks*size && b.streamLen(app) == 0
	})
	st := r.Stats()
	t.Logf("%+v", st)
	require.Zero(t, st.Unverified, "POSTs whose signature did not verify")
	require.Zero(t, st.Mismatched, "an ID carried by two different events")
	require.GreaterOrEqual(t, st.Copies, size, "the chunk recorded twice came twice")
	require.Positive(t, st.RepostedIDs, "a POST whose answer was lost was posted again with its webhook-id")
	for id, e := range r.Events() {
		require.Equal(t, deliveryevent.EventID(app, 7, e.User, e.Type), id)
		require.Equal(t, "r", e.Reminder)
		require.Equal(t, "jakarta", e.Location)
	}
	// 13 entries of 30 events merge up to 100 events a POST: at least 5
	// successful POSTs, each of whole entries.
	require.LessOrEqual(t, st.Accepted, chunks+1, "more POSTs than entries")
	require.GreaterOrEqual(t, st.Accepted, 4)
}

// Injected: app A's endpoint refuses every POST; app B's works. Checked:
// B's events all arrive while A's are retried (A's failures do not hold B
// up), and neither endpoint ever gets an event of the other app's
// occurrences.
func TestOneAppsFailingEndpointNeitherDelaysNorReceivesAnother(t *testing.T) {
	b := setup(t)
	ra, rb := deliveryeventtest.New(), deliveryeventtest.New()
	t.Cleanup(ra.Close)
	t.Cleanup(rb.Close)
	appA, appB := b.app("a", ra), b.app("b", rb)
	ra.Refuse(1 << 30)
	ctx := context.Background()
	for i := range 5 {
		require.NoError(t, b.rec.Record(ctx, chunk(appA, 100, i, i*10, 10)))
		require.NoError(t, b.rec.Record(ctx, chunk(appB, 200, i, i*10, 10)))
	}
	b.dispatch("d1", func(c *deliveryevent.Config) { c.Parallel = 1 })
	testenv.WaitUntil(t, 30*time.Second, "app B's events posted and acknowledged", func() bool {
		return rb.Stats().Distinct == 50 && b.streamLen(appB) == 0
	})
	testenv.WaitUntil(t, 30*time.Second, "app A's endpoint tried again", func() bool { return ra.Stats().Posts >= 3 })
	require.Zero(t, ra.Stats().Distinct, "app A's endpoint refused everything")
	for _, e := range rb.Events() {
		require.EqualValues(t, 200, e.Occurrence, "app B got another app's event")
	}
	require.EqualValues(t, 5, b.streamLen(appA), "app A's events wait")
}

// Injected: a consumer reads entries from the group and dies before posting
// them (their state in Redis is exactly what a killed dispatcher leaves).
// Checked: another dispatcher claims them after ClaimIdle and posts them.
func TestEntriesOfADeadDispatcherAreClaimed(t *testing.T) {
	b := setup(t)
	r := deliveryeventtest.New()
	t.Cleanup(r.Close)
	app := b.app("a", r)
	ctx := context.Background()
	key := keyspace.DeliveryEvents(b.env.Prefix, app)
	require.NoError(t, b.env.Redis.XGroupCreateMkStream(ctx, key, deliveryevent.Group, "0").Err())
	for i := range 3 {
		require.NoError(t, b.rec.Record(ctx, chunk(app, 9, i, i*10, 10)))
	}
	taken, err := b.env.Redis.XReadGroup(ctx, &redis.XReadGroupArgs{Group: deliveryevent.Group, Consumer: "dead",
		Streams: []string{key, ">"}, Count: 10, Block: -1}).Result()
	require.NoError(t, err)
	require.Len(t, taken[0].Messages, 3)

	b.dispatch("alive", func(c *deliveryevent.Config) { c.ClaimIdle = 300 * time.Millisecond })
	testenv.WaitUntil(t, 30*time.Second, "the dead consumer's events posted and acknowledged", func() bool {
		pending, err := b.env.Redis.XPending(ctx, key, deliveryevent.Group).Result()
		require.NoError(t, err)
		return r.Stats().Distinct == 30 && pending.Count == 0
	})
	require.Zero(t, b.streamLen(app))
}

// Injected: an endpoint that refuses everything, and a maximum age of
// 300ms. Checked: the entries are given up (acknowledged and deleted)
// rather than kept forever.
func TestEventsAreGivenUpAfterTheMaximumAge(t *testing.T) {
	b := setup(t)
	r := deliveryeventtest.New()
	t.Cleanup(r.Close)
	app := b.app("a", r)
	r.Refuse(1 << 30)
	require.NoError(t, b.rec.Record(context.Background(), chunk(app, 5, 0, 0, 10)))
	b.dispatch("d1", func(c *deliveryevent.Config) { c.MaxAge = 300 * time.Millisecond })
	testenv.WaitUntil(t, 30*time.Second, "the old entry given up", func() bool { return b.streamLen(app) == 0 && r.Stats().Posts > 0 })
	require.Zero(t, r.Stats().Distinct)
}

// Injected: a stream bound of 3 entries and 5 chunks recorded. Checked: the
// stream keeps the newest 3 (the two oldest are trimmed, not grown past
// the bound) and has a TTL.
func TestStreamIsBounded(t *testing.T) {
	b := setup(t)
	r := deliveryeventtest.New()
	t.Cleanup(r.Close)
	app := b.app("a", r)
	rec := deliveryevent.NewRecorder(deliveryevent.RecorderConfig{Prefix: b.env.Prefix, MaxLen: 3}, b.env.Redis, b.env.DB, b.env.Log)
	for i := range 5 {
		require.NoError(t, rec.Record(context.Background(), chunk(app, 5, i, i*10, 10)))
	}
	require.EqualValues(t, 3, b.streamLen(app))
	ttl, err := b.env.Redis.PTTL(context.Background(), keyspace.DeliveryEvents(b.env.Prefix, app)).Result()
	require.NoError(t, err)
	require.Greater(t, ttl, time.Hour)
}

// Injected: a Redis that does not answer (an address nobody listens on),
// under a recorder timeout of 100ms. Checked: Chunk returns within about
// that bound, having logged and counted the loss, and never panics or
// blocks the caller.
func TestRecordingNeverBlocksDelivery(t *testing.T) {
	env := testenv.New(t)
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)), MaxRetries: -1})
	t.Cleanup(func() { dead.Close() })
	rec := deliveryevent.NewRecorder(deliveryevent.RecorderConfig{Prefix: env.Prefix, Timeout: 100 * time.Millisecond}, dead, env.DB, env.Log)
	done := make(chan struct{})
	go func() {
		rec.Chunk(context.Background(), chunk(1, 1, 0, 0, 10))
		close(done)
	}()
	testenv.WaitUntil(t, 10*time.Second, "Chunk returned", func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
	var nilRec *deliveryevent.Recorder
	nilRec.Chunk(context.Background(), chunk(1, 1, 0, 0, 10)) // not configured: nothing
}

// Event IDs depend on the app, occurrence, user and type only.
func TestEventID(t *testing.T) {
	base := deliveryevent.EventID(1, 2, "u", deliveryevent.Delivered)
	require.Equal(t, base, deliveryevent.EventID(1, 2, "u", deliveryevent.Delivered))
	for _, other := range []string{
		deliveryevent.EventID(3, 2, "u", deliveryevent.Delivered),
		deliveryevent.EventID(1, 3, "u", deliveryevent.Delivered),
		deliveryevent.EventID(1, 2, "v", deliveryevent.Delivered),
		deliveryevent.EventID(1, 2, "u", deliveryevent.Failed),
	} {
		require.NotEqual(t, base, other)
	}
	require.Regexp(t, `^evt_[0-9a-f]{32}$`, base)
}

// A send's result sorts the chunk's users into delivered, failed and
// expired.
func TestOutcomes(t *testing.T) {
	users := []string{"a", "b", "c", "d"}
	for _, tc := range []struct {
		name string
		res  sender.Result
		want map[string][]string
	}{
		{"all sent", sender.Result{}, map[string][]string{"delivered": users}},
		{"named", sender.Result{Failed: 2, Expired: 1, FailedUsers: []string{"b", "c"}, ExpiredUsers: []string{"c"}},
			map[string][]string{"delivered": {"a", "d"}, "failed": {"b"}, "expired": {"c"}}},
		{"all refused, none named", sender.Result{Failed: 4}, map[string][]string{"failed": users}},
		{"all expired", sender.Result{Failed: 4, Expired: 4, FailedUsers: users}, map[string][]string{"expired": users}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, deliveryevent.Outcomes(users, tc.res))
		})
	}
}

// Injected: two apps, one with an endpoint and one without. Checked: the
// recorder says it wants the first's events and not the second's (so a
// worker builds none for it), once it has read the endpoints.
func TestRecorderWantsOnlyAppsWithAnEndpoint(t *testing.T) {
	b := setup(t)
	r := deliveryeventtest.New()
	t.Cleanup(r.Close)
	with := b.app("with", r)
	without, _, _, err := store.CreateApp(context.Background(), b.env.DB, "without", "")
	require.NoError(t, err)
	testenv.WaitUntil(t, 10*time.Second, "the endpoints read", func() bool { return !b.rec.Wants(without.ID) })
	require.True(t, b.rec.Wants(with))
	var none *deliveryevent.Recorder
	require.False(t, none.Wants(with), "no recorder records nothing")
}
