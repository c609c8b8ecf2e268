package worker_test

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/ack"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/metrics"
	"github.com/chime-dev/chime/policy"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/scheduler"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/store"
	"github.com/chime-dev/chime/worker"
)

// policyWorker is f's worker deciding chunks with the delivery policy.
func (f *fixture) policyWorker(t *testing.T, id string, s sender.Sender) (*worker.Worker, *policy.Policy) {
	pol := policy.New(policy.Config{Prefix: f.env.Prefix}, f.env.Redis, f.env.DB)
	return f.workerWith(t, worker.Config{ID: id, Policy: pol}, s), pol
}

// prefer stores a user's preferences as the API does: MySQL, then the
// Redis mirror.
func (f *fixture) prefer(t *testing.T, pol *policy.Policy, user string, p policy.Preferences) {
	t.Helper()
	p, errs := p.Check()
	require.Empty(t, errs)
	doc, err := json.Marshal(p)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, store.PutPreferences(ctx, f.env.DB, store.UserPreference{AppID: 1, UserID: user, Shard: policy.Shard(1, user), Doc: string(doc)}))
	require.NoError(t, pol.Mirror(ctx, 1, user, string(doc)))
}

// policyPayload is f's payload for app 1 with the delivery policy pol,
// valid for 2h.
func (f *fixture) policyPayload(occ int64, pol *message.Policy) queue.Payload {
	p := f.payload(1)
	p.Occurrence, p.App, p.Policy = occ, 1, pol
	p.ExpiresAt = fireAt.Add(2 * time.Hour)
	return p
}

// finishAck returns the finish ack of occurrence occ's target group.
func (f *fixture) finishAck(t *testing.T, occ int64) ack.Ack {
	t.Helper()
	g := ack.Group{Occurrence: occ, Group: target}
	msgs, err := f.env.Redis.XRange(context.Background(), f.acks.StreamKey(g), "-", "+").Result()
	require.NoError(t, err)
	for _, m := range msgs {
		if m.Values["t"] == "finish" && m.Values["o"] == strconv.FormatInt(occ, 10) {
			return ack.Ack{Type: "finish", Sent: atoi(m.Values["sent"]), Skips: ack.Skips{
				Preference: atoi(m.Values["skp"]), Quiet: atoi(m.Values["qt"]), Capped: atoi(m.Values["cap"])}}
		}
	}
	t.Fatalf("no finish ack of occurrence %d", occ)
	return ack.Ack{}
}

func atoi(v any) int {
	s, _ := v.(string)
	n, _ := strconv.Atoi(s)
	return n
}

// Injects: users of the delivered group who opted out of the reminder, of
// its category and of push, then the loss of every preference hash in
// Redis. Checks: the opted-out users are not sent and are counted
// skipped_preference in the finish ack; the push opt-out is sent with push
// excluded; after the loss the opt-outs still hold (the shards are rebuilt
// from MySQL); a critical reminder reaches the category opt-out but not
// the reminder opt-out.
func TestPolicyOptOuts(t *testing.T) {
	f := setup(t, 200)
	ctx := context.Background()
	var rec recorder
	w, pol := f.policyWorker(t, "w1", &rec)
	m := f.members
	f.prefer(t, pol, m[0], policy.Preferences{Reminders: []string{"water"}})
	f.prefer(t, pol, m[1], policy.Preferences{Categories: []string{"health"}})
	f.prefer(t, pol, m[2], policy.Preferences{Channels: []string{sender.ChannelPush}})
	f.prefer(t, pol, m[3], policy.Preferences{Channels: []string{sender.ChannelPush, sender.ChannelInbox}})
	f.prefer(t, pol, m[4], policy.Preferences{Reminders: []string{"another"}, Categories: []string{"marketing"}})

	check := func(occ int64, pol *message.Policy, skipped []string) {
		t.Helper()
		rec.mu.Lock()
		rec.batches = nil
		rec.mu.Unlock()
		require.NoError(t, w.Handle(ctx, f.policyPayload(occ, pol)))
		batches, got := rec.sent()
		want := slices.DeleteFunc(slices.Clone(m), func(u string) bool { return slices.Contains(skipped, u) })
		require.Equal(t, want, got)
		for _, b := range batches {
			for u, ex := range b.Exclude {
				require.Equal(t, m[2], u, "only the push opt-out has exclusions")
				require.Equal(t, []string{sender.ChannelPush}, ex)
			}
		}
		a := f.finishAck(t, occ)
		require.Equal(t, len(skipped), a.Skips.Preference)
		require.Equal(t, len(want), a.Sent)
	}
	check(1, &message.Policy{Category: "health"}, []string{m[0], m[1], m[3]})

	// Redis loses the mirror: the decision rebuilds it from MySQL.
	keys, err := f.env.Redis.Keys(ctx, f.env.Prefix+"*prefs").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	require.NoError(t, f.env.Redis.Del(ctx, keys...).Err())
	check(2, &message.Policy{Category: "health"}, []string{m[0], m[1], m[3]})

	// Critical: the category opt-out gets it, the reminder opt-out does not.
	check(3, &message.Policy{Category: "health", Critical: true}, []string{m[0], m[3]})
}

// quietNow is a span of local time around the fixture's clock in Lisbon
// (09:00:02 UTC is 10:00 local in June): 09:30 to 11:00.
var quietNow = &policy.Hours{Start: "09:30", End: "11:00"}

// Injects: a user whose quiet hours cover the fire, with a reminder that
// holds (valid 3h), one that drops, and one whose validity ends before the
// quiet hours do; then the leader's release at the end of the quiet hours,
// with a worker pulling from the queue. Checks: hold writes one held chunk
// released at 11:00 local (10:00 UTC) and the user is then delivered by a
// released group counted in the occurrence; drop and the expiring one
// record the user as quiet at once; the others are sent at the fire; the
// app's default quiet hours apply to users without their own, and a
// critical reminder ignores both.
func TestPolicyQuietHours(t *testing.T) {
	f := setup(t, 200)
	ctx := context.Background()
	var rec recorder
	w, pol := f.policyWorker(t, "w1", &rec)
	m := f.members
	f.prefer(t, pol, m[5], policy.Preferences{QuietHours: quietNow})

	run := func(occ int64, p *message.Policy, valid time.Duration) {
		t.Helper()
		rec.mu.Lock()
		rec.batches = nil
		rec.mu.Unlock()
		pl := f.policyPayload(occ, p)
		pl.ExpiresAt = fireAt.Add(valid)
		require.NoError(t, w.Handle(ctx, pl))
	}
	without := func(u ...string) []string {
		return slices.DeleteFunc(slices.Clone(m), func(x string) bool { return slices.Contains(u, x) })
	}

	// Drop.
	run(11, &message.Policy{Drop: true}, 3*time.Hour)
	_, got := rec.sent()
	require.Equal(t, without(m[5]), got)
	require.Equal(t, 1, f.finishAck(t, 11).Skips.Quiet)
	// Hold, but the reminder is no longer valid at 10:00 UTC.
	run(12, &message.Policy{}, 30*time.Minute)
	_, got = rec.sent()
	require.Equal(t, without(m[5]), got)
	require.Equal(t, 1, f.finishAck(t, 12).Skips.Quiet)
	// The app's default (07:00-10:30 local) holds everyone else too.
	run(13, &message.Policy{Drop: true, Quiet: &message.Quiet{Start: 7 * 60, End: 10*60 + 30}}, 3*time.Hour)
	_, got = rec.sent()
	require.Empty(t, got)
	require.Equal(t, len(m), f.finishAck(t, 13).Skips.Quiet)
	// Critical ignores the user's and the app's quiet hours.
	run(14, &message.Policy{Critical: true, Quiet: &message.Quiet{Start: 7 * 60, End: 10*60 + 30}}, 3*time.Hour)
	_, got = rec.sent()
	require.Equal(t, m, got)
	var holds int64
	require.NoError(t, f.env.DB.Model(&store.QuietHold{}).Count(&holds).Error)
	require.Zero(t, holds, "nothing held so far")

	// Hold: the occurrence and its rows exist, as the leader fires them.
	require.NoError(t, f.env.DB.Create(&store.Location{ID: locationID, AppID: 1, Name: "Lisbon", Zone: "Europe/Lisbon"}).Error)
	require.NoError(t, f.env.DB.Create(&store.Occurrence{ID: 15, ReminderID: reminderID, LocationID: locationID, FireAt: fireAt,
		ExpiresAt: fireAt.Add(3 * time.Hour), State: store.OccDone, GroupsTotal: 1, GroupsDone: 1}).Error)
	run(15, &message.Policy{}, 3*time.Hour)
	_, got = rec.sent()
	require.Equal(t, without(m[5]), got)
	require.Zero(t, f.finishAck(t, 15).Skips.Quiet, "held users are not an outcome yet")
	var held []store.QuietHold
	require.NoError(t, f.env.DB.Find(&held).Error)
	require.Len(t, held, 1)
	require.Equal(t, []string{m[5]}, policy.HeldUsers(held[0]))
	require.True(t, held[0].ReleaseAt.Equal(time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)), "released at 11:00 Lisbon: %v", held[0].ReleaseAt)

	// The leader releases it at 11:00 local; a worker takes the task.
	rec.mu.Lock()
	rec.batches = nil
	rec.mu.Unlock()
	enq := queue.NewEnqueuer(asynq.NewClientFromRedisClient(f.env.Redis), f.env.Queue)
	sched := scheduler.New(scheduler.Config{TrackLinger: -1}, f.env.DB, f.env.Redis, f.index, enq, ack.NewReader(f.acks), f.clock, testenv.Logger(t))
	require.NoError(t, sched.ReleaseHolds(ctx))
	_, got = rec.sent()
	require.Empty(t, got, "not before the quiet hours end")
	f.clock.Set(time.Date(2026, 6, 1, 10, 0, 1, 0, time.UTC))
	require.NoError(t, sched.ReleaseHolds(ctx))
	require.NoError(t, sched.ReleaseHolds(ctx), "released once")
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	testenv.WaitUntil(t, 10*time.Second, "the held user is delivered", func() bool {
		_, got := rec.sent()
		return slices.Equal(got, []string{m[5]})
	})
	testenv.WaitUntil(t, 10*time.Second, "the released group is counted", func() bool {
		require.NoError(t, sched.Track(ctx, -1))
		var o store.Occurrence
		require.NoError(t, f.env.DB.First(&o, 15).Error)
		return o.GroupsTotal == 2 && o.GroupsDone == 2 && o.Delivered == 1 && o.State == store.OccDone
	})
}

// Injects: a cap of 2 marketing reminders per hour; three occurrences in
// a row, one of them handled twice (a retried task), then a fourth past
// the window. Checks: the first two are sent to everyone, the retry counts
// nobody again, the third is capped for everyone (counted capped), and
// after the window users are sent again; reminders of another category
// are not capped.
func TestPolicyFrequencyCap(t *testing.T) {
	f := setup(t, 200)
	ctx := context.Background()
	var rec recorder
	w, _ := f.policyWorker(t, "w1", &rec)
	capped := &message.Policy{Category: "marketing", CapMax: 2, CapWindow: time.Hour}
	sends := func(occ int64, p *message.Policy) []string {
		t.Helper()
		rec.mu.Lock()
		rec.batches = nil
		rec.mu.Unlock()
		require.NoError(t, w.Handle(ctx, f.policyPayload(occ, p)))
		_, got := rec.sent()
		return got
	}
	require.Equal(t, f.members, sends(21, capped))
	// The same occurrence again, as a new attempt after its run state was
	// lost: the users' counts already hold it.
	require.NoError(t, f.env.Redis.Del(ctx, runKeys(t, f)...).Err())
	require.Equal(t, f.members, sends(21, capped))
	require.Equal(t, f.members, sends(22, capped))
	require.Empty(t, sends(23, capped))
	require.Equal(t, len(f.members), f.finishAck(t, 23).Skips.Capped)
	require.Equal(t, f.members, sends(24, &message.Policy{Category: "news", CapMax: 2, CapWindow: time.Hour}), "another category")

	f.clock.Set(fireAt.Add(time.Hour + 3*time.Second))
	require.Equal(t, f.members, sends(25, capped), "the first two left the window")
	require.Equal(t, f.members, sends(26, capped))
	require.Empty(t, sends(27, capped))
	// A user's field lists the occurrences in the window, the others
	// dropped; the counts expire with their window (and a sixteenth: the
	// hash's expiry is set ahead, not on every write).
	key := capKey(t, f, f.members[0])
	require.Equal(t, []string{"25", "26"}, capEntries(t, f, key, f.members[0]), "27 capped: 25 and 26 counted")
	ttl, err := f.env.Redis.PTTL(ctx, key).Result()
	require.NoError(t, err)
	require.Greater(t, ttl, time.Duration(0))
	require.LessOrEqual(t, ttl, time.Hour+time.Hour/16)
}

func runKeys(t *testing.T, f *fixture) []string {
	keys, err := f.env.Redis.Keys(context.Background(), f.env.Prefix+"ack:*run:21:*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	return keys
}

// capKey is the cap hash of marketing that holds user's field.
func capKey(t *testing.T, f *fixture, user string) string {
	keys, err := f.env.Redis.Keys(context.Background(), f.env.Prefix+"*:cap:marketing").Result()
	require.NoError(t, err)
	var found []string
	for _, k := range keys {
		if f.env.Redis.HExists(context.Background(), k, user).Val() {
			found = append(found, k)
		}
	}
	require.Len(t, found, 1)
	return found[0]
}

// capEntries are the occurrences user's field in key counts.
func capEntries(t *testing.T, f *fixture, key, user string) []string {
	v, err := f.env.Redis.HGet(context.Background(), key, user).Result()
	require.NoError(t, err)
	var occs []string
	for _, e := range strings.Split(v, ",") {
		occ, _, ok := strings.Cut(e, "@")
		require.True(t, ok, e)
		occs = append(occs, occ)
	}
	return occs
}

// Injects: an app with no stored preferences, a group of an uncapped
// reminder delivered in chunks; then an opt-out of the reminder written as
// the API writes it (MySQL, then the mirror) and the same group of the
// next occurrence. Checks: the first delivery sends every member, each
// chunk decided without the decision script (counted as skipped, and no
// preference hash built in Redis, which the script's first run does); the
// second leaves the opted-out user out (skipped_preference in the finish
// ack) with no chunk skipped.
func TestPolicyAppWithoutPreferences(t *testing.T) {
	f := setup(t, 200)
	ctx := context.Background()
	var rec recorder
	w, pol := f.policyWorker(t, "w1", &rec)
	m := f.members
	chunks := (len(m) + chunk - 1) / chunk
	require.Greater(t, chunks, 1)

	before := metrics.PolicySkippedChunks()
	require.NoError(t, w.Handle(ctx, f.policyPayload(1, &message.Policy{Category: "health"})))
	_, got := rec.sent()
	require.Equal(t, m, got)
	require.Equal(t, chunks, int(metrics.PolicySkippedChunks()-before))
	keys, err := f.env.Redis.Keys(ctx, f.env.Prefix+"*prefs").Result()
	require.NoError(t, err)
	require.Empty(t, keys)

	f.prefer(t, pol, m[0], policy.Preferences{Reminders: []string{"water"}})
	rec.mu.Lock()
	rec.batches = nil
	rec.mu.Unlock()
	before = metrics.PolicySkippedChunks()
	require.NoError(t, w.Handle(ctx, f.policyPayload(2, &message.Policy{Category: "health"})))
	_, got = rec.sent()
	require.Equal(t, m[1:], got)
	require.Zero(t, metrics.PolicySkippedChunks()-before)
	require.Equal(t, 1, f.finishAck(t, 2).Skips.Preference)
}
