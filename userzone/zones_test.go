package userzone_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/ack"
	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/scheduler"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/store"
	"github.com/chime-dev/chime/userzone"
	"github.com/chime-dev/chime/worker"
)

// sent is one user's delivery: the occurrence's location and instant, and
// the clock when the worker sent it.
type sent struct {
	Location string
	FireAt   time.Time
	At       time.Time
}

// recorder is a sender that records every user it is sent.
type recorder struct {
	clock clock.Clock
	mu    sync.Mutex
	got   map[string][]sent
}

func (r *recorder) Send(_ context.Context, b *sender.Batch) (sender.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range b.Users {
		r.got[u] = append(r.got[u], sent{Location: b.Location, FireAt: b.FireAt, At: r.clock.Now()})
	}
	return sender.Result{}, nil
}

type bundle struct {
	env     *testenv.Env
	clock   *clock.Fake
	s       *scheduler.Scheduler
	index   *grouping.Index
	insp    *asynq.Inspector
	w       *worker.Worker
	rec     *recorder
	a, b    *api.Client // two apps
	changes string
}

// setup runs the API on loopback (two apps) and a scheduler and a worker
// on a fake clock, all on the test's own database and Redis keys.
func setup(t *testing.T, now time.Time) *bundle {
	env := testenv.New(t)
	fake := clock.NewFake(now)
	index := grouping.NewIndex(env.Redis, env.DB, env.Prefix)
	s := scheduler.New(scheduler.Config{AckTimeout: time.Minute, QueueTimeout: time.Minute, TrackLinger: -1}, env.DB, env.Redis, index,
		queue.NewEnqueuer(asynq.NewClientFromRedisClient(env.Redis), env.Queue),
		ack.NewReader(ack.NewTracker(env.Redis, env.Prefix)), fake, env.Log)
	changes := env.Prefix + "changes"
	srv := httptest.NewServer(api.New(api.Config{ChangesChannel: changes, Now: fake.Now}, env.DB, env.Redis, index, env.Log).Handler())
	t.Cleanup(srv.Close)
	client := func(name string) *api.Client {
		_, key, err := api.CreateApp(context.Background(), env.DB, name)
		require.NoError(t, err)
		return &api.Client{Base: srv.URL, Key: key, HTTP: srv.Client()}
	}
	rec := &recorder{clock: fake, got: map[string][]sent{}}
	w := worker.New(worker.Config{ID: "w", Queue: env.Queue, Zones: userzone.NewMoves(env.Redis, env.Prefix)},
		env.Redis, index, ack.NewTracker(env.Redis, env.Prefix), rec, fake, env.Log)
	return &bundle{env: env, clock: fake, s: s, index: index, insp: asynq.NewInspectorFromRedisClient(env.Redis),
		w: w, rec: rec, a: client("a"), b: client("b"), changes: changes}
}

// occurrences returns the scheduled occurrences of reminder key of app a,
// by instant.
func (b *bundle) occurrences(t *testing.T, key string) []store.Occurrence {
	t.Helper()
	var occ []store.Occurrence
	require.NoError(t, b.env.DB.Joins("JOIN reminders r ON r.id = occurrences.reminder_id").
		Where("r.`key` = ? AND occurrences.state = ?", key, store.OccScheduled).Order("fire_at").Find(&occ).Error)
	return occ
}

// locationName returns the name of location id.
func (b *bundle) locationName(t *testing.T, id int64) store.Location {
	t.Helper()
	var l store.Location
	require.NoError(t, b.env.DB.First(&l, id).Error)
	return l
}

// fireUntil plans, then fires each occurrence of key due up to until at its
// instant (the clock set to it), runs its tasks through the worker and
// records the acks until it is done.
func (b *bundle) fireUntil(t *testing.T, key string, until time.Time) {
	t.Helper()
	ctx := context.Background()
	for {
		// Planned at each instant, as the leader does on its interval.
		require.NoError(t, b.s.Plan(ctx))
		occs := b.occurrences(t, key)
		if len(occs) == 0 || occs[0].FireAt.After(until) {
			break
		}
		o := occs[0]
		if o.FireAt.After(b.clock.Now()) {
			b.clock.Set(o.FireAt) // a catch-up fires at once, after its instant
		}
		require.NoError(t, b.s.Fire(ctx, o))
		tasks, err := b.insp.ListPendingTasks(b.env.Queue, asynq.PageSize(1000))
		require.NoError(t, err)
		for _, task := range tasks {
			require.NoError(t, b.w.ProcessTask(ctx, asynq.NewTask(task.Type, task.Payload)))
		}
		_, err = b.insp.DeleteAllPendingTasks(b.env.Queue)
		require.NoError(t, err)
		testenv.WaitUntil(t, 10*time.Second, "occurrence done", func() bool {
			require.NoError(t, b.s.Track(ctx, 50*time.Millisecond))
			var got store.Occurrence
			require.NoError(t, b.env.DB.First(&got, o.ID).Error)
			return got.State == store.OccDone
		})
	}
	b.clock.Set(until)
}

// twentyZones span UTC-11 to UTC+14, with :30 and :45 offsets and both
// hemispheres.
var twentyZones = []string{
	"Pacific/Kiritimati", "Pacific/Auckland", "Australia/Sydney", "Australia/Adelaide", "Asia/Tokyo",
	"Asia/Jakarta", "Asia/Kathmandu", "Asia/Kolkata", "Asia/Dubai", "Europe/Moscow",
	"Africa/Johannesburg", "Europe/Paris", "Europe/London", "Atlantic/Azores", "America/Sao_Paulo",
	"America/St_Johns", "America/New_York", "America/Chicago", "America/Los_Angeles", "Pacific/Pago_Pago",
}

func at(t *testing.T, date string, hhmm string, zone string) time.Time {
	t.Helper()
	d, err := localtime.ParseDate(date)
	require.NoError(t, err)
	o, err := localtime.Parse(hhmm)
	require.NoError(t, err)
	loc, err := localtime.LoadZone(zone)
	require.NoError(t, err)
	return localtime.On(d.Year, d.Month, d.Day, o, loc)
}

// Users registered in 20 zones (bulk, three each) for a daily "09:00
// wherever you are" reminder, with fires driven on a fake clock through
// the planner, the firer and a worker on real Redis and MariaDB. Checked:
// the planner makes one occurrence a day per managed zone location, at
// 09:00 local; each user is sent once on 2027-02-01, at 09:00 in the
// user's own zone, and never another user's; one group per zone, no task
// per user. A user who registers in a new zone after planning is
// announced on the changes channel and planned at the next pass.
func TestUsersInTwentyZonesGetNineOClockInTheirOwn(t *testing.T) {
	// Rows the API writes are created now: the fake clock runs after it.
	start := time.Date(2027, 1, 31, 18, 0, 0, 0, time.UTC) // before 09:00 Feb 1 in UTC+14
	b := setup(t, start)
	ctx := context.Background()
	require.NoError(t, b.a.Do(ctx, http.MethodPut, "/v1/reminders/standup", map[string]any{
		"title": "Stand-up", "valid_for": "10m", "times": []any{map[string]any{"user_zones": true, "local_time": "09:00"}},
	}, nil))
	var rem api.Reminder
	require.NoError(t, b.a.Do(ctx, http.MethodGet, "/v1/reminders/standup", nil, &rem))
	require.Equal(t, []api.ReminderTime{{UserZones: true, LocalTime: "09:00:00"}}, rem.Times)

	var rows []map[string]string
	zoneOf := map[string]string{}
	for i, z := range twentyZones {
		for j := range 3 {
			u := fmt.Sprintf("%d", 1000+i*3+j)
			zoneOf[u] = z
			rows = append(rows, map[string]string{"user_id": u, "zone": z})
		}
	}
	require.NoError(t, b.a.Do(ctx, http.MethodPost, "/v1/reminders/standup/subscribers", map[string]any{"subscribers": rows}, nil))

	require.NoError(t, b.s.Plan(ctx))
	dec1 := 0
	for _, o := range b.occurrences(t, "standup") {
		l := b.locationName(t, o.LocationID)
		z, ok := userzone.Zone(l.Name)
		require.True(t, ok, "occurrences only at managed zone locations, not %q", l.Name)
		require.Equal(t, z, l.Zone)
		loc, _ := localtime.LoadZone(z)
		require.Equal(t, "09:00", o.FireAt.In(loc).Format("15:04"), "zone %s", z)
		if o.FireAt.In(loc).Format(time.DateOnly) == "2027-02-01" {
			dec1++
		}
	}
	require.Equal(t, len(twentyZones), dec1, "one occurrence on Feb 1 per zone")

	// A user arriving in a zone nobody else is in: announced, then planned.
	sub := b.env.Redis.Subscribe(ctx, b.changes)
	defer sub.Close()
	_, err := sub.Receive(ctx)
	require.NoError(t, err)
	var out api.Subscriber
	require.NoError(t, b.a.Do(ctx, http.MethodPut, "/v1/reminders/standup/subscribers/nairobi-1", map[string]string{"zone": "Africa/Nairobi"}, &out))
	require.Equal(t, api.Subscriber{UserID: "nairobi-1", Location: "tz:Africa/Nairobi", Zone: "Africa/Nairobi", Group: grouping.Bucket("nairobi-1")}, out)
	zoneOf["nairobi-1"] = "Africa/Nairobi"
	msg, err := sub.ReceiveMessage(ctx)
	require.NoError(t, err)
	require.Equal(t, "standup", msg.Payload)

	end := time.Date(2027, 2, 1, 21, 0, 0, 0, time.UTC) // after 09:00 Feb 1 in UTC-11
	b.fireUntil(t, "standup", end)
	require.Len(t, b.rec.got, len(zoneOf))
	for u, z := range zoneOf {
		var dec []sent
		for _, s := range b.rec.got[u] {
			loc, _ := localtime.LoadZone(z)
			if s.FireAt.In(loc).Format(time.DateOnly) == "2027-02-01" {
				dec = append(dec, s)
			}
		}
		require.Len(t, dec, 1, "user %s in %s: once on Feb 1", u, z)
		require.Equal(t, userzone.Location(z), dec[0].Location)
		require.Equal(t, at(t, "2027-02-01", "09:00", z), dec[0].At, "user %s sent at 09:00 in %s", u, z)
	}
	var runs int64
	require.NoError(t, b.env.DB.Model(&store.GroupRun{}).Count(&runs).Error)
	require.LessOrEqual(t, runs, int64(2*(len(twentyZones)+1)), "a group per zone and fire, not a task per user")
}

// Moving zone. Injected: on Feb 1 a user in Jakarta, reminded at 09:00
// there (02:00 UTC), moves at 03:00 UTC to London, where 09:00 is still
// ahead; another user in London moves at the same time to Jakarta, where
// 09:00 has passed; a third moves from Jakarta to London and back to
// Jakarta; a fourth registers in Jakarta after its 09:00 and then moves to
// London. Checked: the first is not reminded again in London on Feb 1
// and is reminded on Feb 2 at 09:00 London, and never in Jakarta again;
// the second, by the rule package userzone documents, gets Feb 1 in
// neither zone and Feb 2 at 09:00 Jakarta; the third gets Feb 1 once (in
// Jakarta, before the moves) and Feb 2 in Jakarta; the fourth, never
// reminded in Jakarta, gets both days in London. Users who stay get both
// days.
func TestMovingZoneRemindsOnceInTheNewZone(t *testing.T) {
	start := time.Date(2027, 2, 1, 1, 0, 0, 0, time.UTC)
	b := setup(t, start)
	ctx := context.Background()
	require.NoError(t, b.a.Do(ctx, http.MethodPut, "/v1/reminders/standup", map[string]any{
		"title": "Stand-up", "valid_for": "10m", "times": []any{map[string]any{"user_zones": true, "local_time": "09:00"}},
	}, nil))
	put := func(user, zone string) {
		require.NoError(t, b.a.Do(ctx, http.MethodPut, "/v1/reminders/standup/subscribers/"+user, map[string]string{"zone": zone}, nil))
	}
	put("east-west", "Asia/Jakarta")
	put("west-east", "Europe/London")
	put("back", "Asia/Jakarta")
	put("stay-j", "Asia/Jakarta")
	put("stay-l", "Europe/London")

	b.fireUntil(t, "standup", time.Date(2027, 2, 1, 3, 0, 0, 0, time.UTC))
	put("fresh", "Asia/Jakarta") // after Jakarta's 09:00: never reminded there
	put("east-west", "Europe/London")
	put("west-east", "Asia/Jakarta")
	put("fresh", "Europe/London")
	put("back", "Europe/London")
	put("back", "Asia/Jakarta")
	b.fireUntil(t, "standup", time.Date(2027, 2, 2, 10, 0, 0, 0, time.UTC))

	j, l := "Asia/Jakarta", "Europe/London"
	want := map[string][]time.Time{
		"east-west": {at(t, "2027-02-01", "09:00", j), at(t, "2027-02-02", "09:00", l)},
		"west-east": {at(t, "2027-02-02", "09:00", j)},
		"back":      {at(t, "2027-02-01", "09:00", j), at(t, "2027-02-02", "09:00", j)},
		"fresh":     {at(t, "2027-02-01", "09:00", l), at(t, "2027-02-02", "09:00", l)},
		"stay-j":    {at(t, "2027-02-01", "09:00", j), at(t, "2027-02-02", "09:00", j)},
		"stay-l":    {at(t, "2027-02-01", "09:00", l), at(t, "2027-02-02", "09:00", l)},
	}
	for u, w := range want {
		var got []time.Time
		for _, s := range b.rec.got[u] {
			got = append(got, s.At)
		}
		slices.SortFunc(got, time.Time.Compare)
		require.Equal(t, w, got, "user %s", u)
	}
	var o store.Occurrence
	require.NoError(t, b.env.DB.Where("fire_at = ?", at(t, "2027-02-01", "09:00", l)).First(&o).Error)
	require.Equal(t, int64(3), o.Delivered, "the moved user already reminded counts as delivered, with stay-l and fresh")
}

// Moving into a zone that already fired. Injected: on Feb 1 users in
// London (09:00 still ahead there) move to Jakarta after its 09:00 fired
// (02:00 UTC, valid 10 minutes): one at 02:05; one at 02:05 and back to
// London at 02:06; one at 02:05, back at 02:06 and to Jakarta again at
// 02:07; one at 02:15, after the validity ended, and back and forth at
// 02:16 and 02:17. Fires are driven on a
// fake clock through the planner, the firer and a worker on real Redis
// and MariaDB. Checked: the first three get Jakarta's Feb 1 once, at the
// move (02:05), as a one-user occurrence of that instant, and no London
// Feb 1 (the one back in London is left out of London's 09:00); exactly
// one catch-up each; the late one gets no Feb 1 at all and is counted
// expired on Jakarta's occurrence, once however often it moved; everyone gets Feb 2 in the zone
// they ended in; users who stay get both days.
func TestMovingIntoAZoneThatFiredCatchesUpOnce(t *testing.T) {
	start := time.Date(2027, 2, 1, 1, 0, 0, 0, time.UTC)
	b := setup(t, start)
	ctx := context.Background()
	require.NoError(t, b.a.Do(ctx, http.MethodPut, "/v1/reminders/standup", map[string]any{
		"title": "Stand-up", "valid_for": "10m", "times": []any{map[string]any{"user_zones": true, "local_time": "09:00"}},
	}, nil))
	j, l := "Asia/Jakarta", "Europe/London"
	put := func(user, zone string) {
		require.NoError(t, b.a.Do(ctx, http.MethodPut, "/v1/reminders/standup/subscribers/"+user, map[string]string{"zone": zone}, nil))
	}
	for _, u := range []string{"catch", "back", "twice", "late", "stay-l"} {
		put(u, l)
	}
	put("stay-j", j)

	b.fireUntil(t, "standup", time.Date(2027, 2, 1, 2, 5, 0, 0, time.UTC))
	put("catch", j)
	put("back", j)
	put("twice", j)
	b.fireUntil(t, "standup", time.Date(2027, 2, 1, 2, 6, 0, 0, time.UTC))
	put("back", l)
	put("twice", l)
	b.clock.Set(time.Date(2027, 2, 1, 2, 7, 0, 0, time.UTC))
	put("twice", j)
	b.fireUntil(t, "standup", time.Date(2027, 2, 1, 2, 15, 0, 0, time.UTC))
	put("late", j)
	b.clock.Set(time.Date(2027, 2, 1, 2, 16, 0, 0, time.UTC))
	put("late", l)
	b.clock.Set(time.Date(2027, 2, 1, 2, 17, 0, 0, time.UTC))
	put("late", j)
	b.fireUntil(t, "standup", time.Date(2027, 2, 2, 10, 0, 0, 0, time.UTC))

	jakarta1 := at(t, "2027-02-01", "09:00", j)
	move := time.Date(2027, 2, 1, 2, 5, 0, 0, time.UTC)
	want := map[string][]sent{
		"catch":  {{userzone.Location(j), jakarta1, move}, {userzone.Location(j), at(t, "2027-02-02", "09:00", j), at(t, "2027-02-02", "09:00", j)}},
		"back":   {{userzone.Location(j), jakarta1, move}, {userzone.Location(l), at(t, "2027-02-02", "09:00", l), at(t, "2027-02-02", "09:00", l)}},
		"twice":  {{userzone.Location(j), jakarta1, move}, {userzone.Location(j), at(t, "2027-02-02", "09:00", j), at(t, "2027-02-02", "09:00", j)}},
		"late":   {{userzone.Location(j), at(t, "2027-02-02", "09:00", j), at(t, "2027-02-02", "09:00", j)}},
		"stay-j": {{userzone.Location(j), jakarta1, jakarta1}, {userzone.Location(j), at(t, "2027-02-02", "09:00", j), at(t, "2027-02-02", "09:00", j)}},
		"stay-l": {{userzone.Location(l), at(t, "2027-02-01", "09:00", l), at(t, "2027-02-01", "09:00", l)}, {userzone.Location(l), at(t, "2027-02-02", "09:00", l), at(t, "2027-02-02", "09:00", l)}},
	}
	for u, w := range want {
		got := slices.Clone(b.rec.got[u])
		slices.SortFunc(got, func(a, b sent) int { return a.At.Compare(b.At) })
		for i := range got {
			got[i].FireAt, got[i].At = got[i].FireAt.UTC(), got[i].At.UTC()
		}
		for i := range w {
			w[i].FireAt, w[i].At = w[i].FireAt.UTC(), w[i].At.UTC()
		}
		require.Equal(t, w, got, "user %s", u)
	}

	var catchUps []store.Occurrence
	require.NoError(t, b.env.DB.Where("test_user <> ''").Order("test_user").Find(&catchUps).Error)
	require.Len(t, catchUps, 3, "one catch-up per user, however often the user moved")
	for i, u := range []string{"back", "catch", "twice"} {
		require.Equal(t, u, catchUps[i].TestUser)
		require.Equal(t, jakarta1.UTC(), catchUps[i].FireAt.UTC())
		require.Equal(t, store.OccDone, catchUps[i].State)
		require.Equal(t, int64(1), catchUps[i].Delivered)
	}
	var o store.Occurrence
	require.NoError(t, b.env.DB.Where("fire_at = ? AND test_user = ''", jakarta1).First(&o).Error)
	require.Equal(t, int64(1), o.Expired, "the user who moved in after the validity, counted once")
	require.Equal(t, int64(1), o.Delivered, "stay-j")
}

// A once reminder with local: true fires at its wall-clock time in each
// user's zone and at its real location in that location's zone, with the
// clock-change rule: 02:30 on the night Paris skips 02:00-03:00 fires at
// 03:00 new time. Checked through the planner and GET.
func TestLocalOnceFiresAtItsWallClockInEachZone(t *testing.T) {
	b := setup(t, time.Date(2027, 3, 27, 12, 0, 0, 0, time.UTC))
	ctx := context.Background()
	require.NoError(t, b.a.Do(ctx, http.MethodPut, "/v1/reminders/spring", map[string]any{
		"kind": "once", "title": "Spring", "local": true, "at": "2027-03-28T02:30:00",
		"locations": []any{map[string]string{"location": "lisbon", "zone": "Europe/Lisbon"}},
	}, nil))
	var rem map[string]any
	require.NoError(t, b.a.Do(ctx, http.MethodGet, "/v1/reminders/spring", nil, &rem))
	require.Equal(t, "2027-03-28T02:30:00", rem["at"])
	require.Equal(t, true, rem["local"])
	zones := []string{"Europe/Paris", "Asia/Tokyo", "America/New_York"}
	for i, z := range zones {
		require.NoError(t, b.a.Do(ctx, http.MethodPut, fmt.Sprintf("/v1/reminders/spring/subscribers/u%d", i), map[string]string{"zone": z}, nil))
	}
	require.NoError(t, b.a.Do(ctx, http.MethodPut, "/v1/reminders/spring/subscribers/l1", map[string]string{"location": "lisbon"}, nil))
	require.NoError(t, b.s.Plan(ctx))
	got := map[string]time.Time{}
	for _, o := range b.occurrences(t, "spring") {
		got[b.locationName(t, o.LocationID).Name] = o.FireAt.UTC()
	}
	require.Equal(t, map[string]time.Time{
		"tz:Europe/Paris":     time.Date(2027, 3, 28, 1, 0, 0, 0, time.UTC), // 03:00 CEST, the first instant after the gap
		"tz:Asia/Tokyo":       time.Date(2027, 3, 27, 17, 30, 0, 0, time.UTC),
		"tz:America/New_York": time.Date(2027, 3, 28, 6, 30, 0, 0, time.UTC),
		"lisbon":              time.Date(2027, 3, 28, 1, 30, 0, 0, time.UTC), // Lisbon springs from 01:00 to 02:00: 02:30 is WEST
	}, got)
	b.fireUntil(t, "spring", time.Date(2027, 3, 28, 7, 0, 0, 0, time.UTC))
	for _, u := range []string{"u0", "u1", "u2", "l1"} {
		require.Len(t, b.rec.got[u], 1, "user %s once", u)
	}
}

func problemOf(t *testing.T, err error, status int) *api.Problem {
	t.Helper()
	var se *api.StatusError
	require.True(t, errors.As(err, &se), "want a %d, got %v", status, err)
	require.Equal(t, status, se.Status, string(se.Body))
	require.NotNil(t, se.Problem, string(se.Body))
	return se.Problem
}

func fields(p *api.Problem) []string {
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Field)
	}
	return out
}

// Bad input is a 422 naming the field, and stores nothing: an unknown
// zone, a zone with a location, a zone for a timetable reminder or for a
// daily one without a user_zones time, one bad row of a bulk request, a
// managed location name through PUT /v1/locations, a user_zones time
// naming a location, a local at with an offset, local on a daily
// reminder. And one app cannot see or touch another's managed locations:
// app b does not list them, cannot read one, cannot write one, and its own
// user in the same zone gets a location of its own.
func TestZoneBadInputAndTenancy(t *testing.T) {
	b := setup(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	ctx := context.Background()
	require.NoError(t, b.a.Do(ctx, http.MethodPut, "/v1/reminders/standup", map[string]any{
		"title": "S", "times": []any{map[string]any{"user_zones": true, "local_time": "09:00"}},
	}, nil))
	require.NoError(t, b.a.Do(ctx, http.MethodPut, "/v1/reminders/plain", map[string]any{
		"title": "P", "times": []any{map[string]any{"location": "paris", "zone": "Europe/Paris", "local_time": "09:00"}},
	}, nil))
	require.NoError(t, b.a.Do(ctx, http.MethodPut, "/v1/reminders/tt", map[string]any{"kind": "timetable", "title": "T"}, nil))
	counts := func() (subs, locs int64) {
		require.NoError(t, b.env.DB.Model(&store.Subscription{}).Count(&subs).Error)
		require.NoError(t, b.env.DB.Model(&store.Location{}).Where("name LIKE ?", userzone.Prefix+"%").Count(&locs).Error)
		return
	}
	for _, c := range []struct {
		name, path string
		body       any
		field      string
	}{
		{"unknown zone", "/v1/reminders/standup/subscribers/u1", map[string]string{"zone": "Mars/Olympus"}, "zone"},
		{"Local", "/v1/reminders/standup/subscribers/u1", map[string]string{"zone": "Local"}, "zone"},
		{"zone and location", "/v1/reminders/plain/subscribers/u1", map[string]string{"zone": "Europe/Paris", "location": "paris"}, "zone"},
		{"timetable", "/v1/reminders/tt/subscribers/u1", map[string]string{"zone": "Europe/Paris"}, "zone"},
		{"daily without user_zones", "/v1/reminders/plain/subscribers/u1", map[string]string{"zone": "Europe/Paris"}, "zone"},
	} {
		err := b.a.Do(ctx, http.MethodPut, c.path, c.body, nil)
		require.Equal(t, []string{c.field}, fields(problemOf(t, err, http.StatusUnprocessableEntity)), c.name)
	}
	err := b.a.Do(ctx, http.MethodPost, "/v1/reminders/standup/subscribers", map[string]any{"subscribers": []any{
		map[string]string{"user_id": "u1", "zone": "Asia/Jakarta"}, map[string]string{"user_id": "u2", "zone": "Asia/Nowhere"},
	}}, nil)
	require.Equal(t, []string{"subscribers[1].zone"}, fields(problemOf(t, err, http.StatusUnprocessableEntity)))
	err = b.a.Do(ctx, http.MethodPost, "/v1/reminders/tt/subscribers", map[string]any{"subscribers": []any{
		map[string]string{"user_id": "u1", "zone": "Asia/Jakarta"},
	}}, nil)
	require.Equal(t, []string{"subscribers[0].zone"}, fields(problemOf(t, err, http.StatusUnprocessableEntity)))
	subs, locs := counts()
	require.Zero(t, subs, "nothing stored")
	require.Zero(t, locs, "no managed location created")

	for _, name := range []string{"tz:UTC", url.PathEscape("tz:Asia/Jakarta")} {
		err = b.a.Do(ctx, http.MethodPut, "/v1/locations/"+name, map[string]string{"zone": "UTC"}, nil)
		require.Equal(t, []string{"location"}, fields(problemOf(t, err, http.StatusUnprocessableEntity)), name)
	}
	for _, c := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"user_zones with location", map[string]any{"title": "x", "times": []any{map[string]any{"user_zones": true, "location": "paris", "zone": "Europe/Paris", "local_time": "09:00"}}}, "times[0].location"},
		{"user_zones bad time", map[string]any{"title": "x", "times": []any{map[string]any{"user_zones": true, "local_time": "25:00"}}}, "times[0].local_time"},
		{"local at with offset", map[string]any{"kind": "once", "title": "x", "local": true, "at": "2026-12-24T09:00:00Z"}, "at"},
		{"at without offset", map[string]any{"kind": "once", "title": "x", "at": "2026-12-24T09:00:00"}, "at"},
		{"local on daily", map[string]any{"title": "x", "local": true, "times": []any{map[string]any{"user_zones": true, "local_time": "09:00"}}}, "local"},
		{"managed location in times", map[string]any{"title": "x", "times": []any{map[string]any{"location": "tz:UTC", "zone": "UTC", "local_time": "09:00"}}}, "times[0].location"},
	} {
		err := b.a.Do(ctx, http.MethodPut, "/v1/reminders/bad", c.body, nil)
		require.Equal(t, []string{c.field}, fields(problemOf(t, err, http.StatusUnprocessableEntity)), c.name)
	}
	require.True(t, errors.As(b.a.Do(ctx, http.MethodGet, "/v1/reminders/bad", nil, nil), new(*api.StatusError)), "no reminder stored")

	// Tenancy: app a registers a user in Jakarta; app b sees nothing of it.
	require.NoError(t, b.a.Do(ctx, http.MethodPut, "/v1/reminders/standup/subscribers/u1", map[string]string{"zone": "Asia/Jakarta"}, nil))
	var la struct{ Locations []api.Location }
	require.NoError(t, b.a.Do(ctx, http.MethodGet, "/v1/locations", nil, &la))
	require.Contains(t, la.Locations, api.Location{Location: "tz:Asia/Jakarta", Zone: "Asia/Jakarta", Managed: true})
	var lb struct{ Locations []api.Location }
	require.NoError(t, b.b.Do(ctx, http.MethodGet, "/v1/locations", nil, &lb))
	require.Empty(t, lb.Locations)
	_ = problemOf(t, b.b.Do(ctx, http.MethodGet, "/v1/locations/"+url.PathEscape("tz:Asia/Jakarta"), nil, nil), http.StatusNotFound)
	_ = problemOf(t, b.b.Do(ctx, http.MethodPut, "/v1/reminders/standup/subscribers/u9", map[string]string{"zone": "Asia/Jakarta"}, nil), http.StatusNotFound)
	require.NoError(t, b.b.Do(ctx, http.MethodPut, "/v1/reminders/standup", map[string]any{
		"title": "B's", "times": []any{map[string]any{"user_zones": true, "local_time": "09:00"}},
	}, nil))
	require.NoError(t, b.b.Do(ctx, http.MethodPut, "/v1/reminders/standup/subscribers/u1", map[string]string{"zone": "Asia/Jakarta"}, nil))
	var jakarta []store.Location
	require.NoError(t, b.env.DB.Where("name = ?", "tz:Asia/Jakarta").Find(&jakarta).Error)
	require.Len(t, jakarta, 2, "a managed location per app")
	require.NotEqual(t, jakarta[0].AppID, jakarta[1].AppID)
	var sa, sb []store.Subscription
	require.NoError(t, b.env.DB.Joins("JOIN reminders r ON r.id = subscriptions.reminder_id").Where("r.app_id = ?", jakarta[0].AppID).Find(&sa).Error)
	require.NoError(t, b.env.DB.Joins("JOIN reminders r ON r.id = subscriptions.reminder_id").Where("r.app_id = ?", jakarta[1].AppID).Find(&sb).Error)
	require.Len(t, sa, 1)
	require.Len(t, sb, 1)
	require.NotEqual(t, sa[0].LocationID, sb[0].LocationID, "each app's user at its own app's location")
}
