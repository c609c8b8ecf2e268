package scheduler_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/ack"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/scheduler"
	"github.com/chime-dev/chime/store"
)

// setupCfg is setup with a scheduler configuration of the test's own.
func setupCfg(t testing.TB, now time.Time, cfg scheduler.Config) *bundle {
	env := testenv.New(t)
	fake := clock.NewFake(now)
	s, index := newScheduler(env, fake, cfg)
	return &bundle{env: env, clock: fake, s: s, index: index, insp: asynq.NewInspectorFromRedisClient(env.Redis)}
}

// newScheduler returns a scheduler on env's servers with clock clk, and
// its index.
func newScheduler(env *testenv.Env, clk clock.Clock, cfg scheduler.Config) (*scheduler.Scheduler, *grouping.Index) {
	index := grouping.NewIndex(env.Redis, env.DB, env.Prefix)
	cfg.TrackLinger = -1
	s := scheduler.New(cfg, env.DB, env.Redis, index,
		queue.NewEnqueuer(asynq.NewClientFromRedisClient(env.Redis), env.Queue),
		ack.NewReader(ack.NewTracker(env.Redis, env.Prefix)), clk, env.Log)
	return s, index
}

// kindReminder creates a reminder of the given kind with one location per
// zone and n subscribers at the first, and returns it and the location IDs.
func (b *bundle) kindReminder(t *testing.T, r store.Reminder, zones []string, n int) (store.Reminder, []int64) {
	t.Helper()
	db := b.env.DB
	app := store.App{Name: "a"}
	require.NoError(t, db.Create(&app).Error)
	r.AppID, r.Title, r.Groups = app.ID, "T", 4
	if r.Key == "" {
		r.Key = "r"
	}
	if r.ValidForS == 0 {
		r.ValidForS = 600
	}
	r.CreatedAt = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, db.Create(&r).Error)
	var locs []int64
	for i, z := range zones {
		l := store.Location{AppID: app.ID, Name: "loc" + string(rune('a'+i)), Zone: z}
		require.NoError(t, db.Create(&l).Error)
		require.NoError(t, db.Create(&store.ReminderLocation{ReminderID: r.ID, LocationID: l.ID}).Error)
		locs = append(locs, l.ID)
	}
	var subs []store.Subscription
	for i := range n {
		u := "u" + time.Duration(i).String()
		subs = append(subs, store.Subscription{ReminderID: r.ID, UserID: u, LocationID: locs[0], GroupNo: grouping.Bucket(u)})
	}
	if n > 0 {
		require.NoError(t, db.Create(&subs).Error)
	}
	return r, locs
}

func fireTimes(occs []store.Occurrence, state string) []string {
	var out []string
	for _, o := range occs {
		if state == "" || o.State == state {
			out = append(out, o.FireAt.UTC().Format(time.RFC3339))
		}
	}
	return out
}

// Timetable rows fire on their date at their local time, with the package
// localtime rules on clock-change days, in zones with whole-hour, :30 and
// :45 offsets, in both hemispheres, and in a zone that abolished DST.
func TestTimetableRowsFireOnTheirDates(t *testing.T) {
	for _, tc := range []struct {
		name  string
		zone  string
		rows  map[string]string // date -> local time
		start time.Time         // the clock when planning
		want  []string          // UTC
	}{
		{"Jakarta, no DST", "Asia/Jakarta",
			map[string]string{"2026-03-01": "04:41", "2026-03-02": "04:42", "2026-03-03": "04:42:30"},
			time.Date(2026, 2, 28, 12, 0, 0, 0, time.UTC),
			[]string{"2026-02-28T21:41:00Z", "2026-03-01T21:42:00Z", "2026-03-02T21:42:30Z"}},
		{"London, 01:30 skipped on 2026-03-29 fires at 02:00 BST", "Europe/London",
			map[string]string{"2026-03-28": "01:30", "2026-03-29": "01:30", "2026-03-30": "01:30"},
			time.Date(2026, 3, 27, 12, 0, 0, 0, time.UTC),
			[]string{"2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
		{"New York, 01:30 twice on 2026-11-01 fires at the first", "America/New_York",
			map[string]string{"2026-10-31": "01:30", "2026-11-01": "01:30", "2026-11-02": "01:30"},
			time.Date(2026, 10, 30, 12, 0, 0, 0, time.UTC),
			[]string{"2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
		{"Lord Howe, half-hour DST gap", "Australia/Lord_Howe",
			map[string]string{"2026-10-03": "02:15", "2026-10-04": "02:15", "2026-10-05": "02:15"},
			time.Date(2026, 10, 2, 0, 0, 0, 0, time.UTC),
			[]string{"2026-10-02T15:45:00Z", "2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"}},
		{"Chatham, :45 offset", "Pacific/Chatham",
			map[string]string{"2026-06-01": "05:00", "2026-06-02": "05:00"},
			time.Date(2026, 5, 30, 12, 0, 0, 0, time.UTC),
			[]string{"2026-05-31T16:15:00Z", "2026-06-01T16:15:00Z"}},
		{"Kathmandu, :45 offset", "Asia/Kathmandu",
			map[string]string{"2026-06-01": "05:00"},
			time.Date(2026, 5, 30, 12, 0, 0, 0, time.UTC),
			[]string{"2026-05-31T23:15:00Z"}},
		{"Sao Paulo after DST was abolished", "America/Sao_Paulo",
			map[string]string{"2026-11-01": "00:30", "2026-11-02": "00:30"},
			time.Date(2026, 10, 31, 0, 0, 0, 0, time.UTC),
			[]string{"2026-11-01T03:30:00Z", "2026-11-02T03:30:00Z"}},
		{"dates far ahead: Paris skips 02:30 on 2061-03-27", "Europe/Paris",
			map[string]string{"2061-03-27": "02:30", "2061-03-28": "02:30"},
			time.Date(2061, 3, 26, 0, 0, 0, 0, time.UTC),
			[]string{"2061-03-27T01:00:00Z", "2061-03-28T00:30:00Z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := setupCfg(t, tc.start, scheduler.Config{Horizon: 96 * time.Hour})
			r, locs := b.kindReminder(t, store.Reminder{Kind: store.KindTimetable}, []string{tc.zone}, 0)
			for date, at := range tc.rows {
				sec, err := localtime.Parse(at)
				require.NoError(t, err)
				require.NoError(t, b.env.DB.Create(&store.DatedTime{ReminderID: r.ID, LocationID: locs[0], Date: date, LocalSec: int(sec),
					CreatedAt: tc.start.Add(-time.Hour)}).Error)
			}
			ctx := context.Background()
			require.NoError(t, b.s.Plan(ctx))
			require.NoError(t, b.s.Plan(ctx), "planning twice adds nothing")
			require.Equal(t, tc.want, fireTimes(b.occurrences(t), store.OccScheduled))
		})
	}
}

// Changing a timetable row before it fires replaces its occurrence;
// deleting the row cancels it.
func TestTimetableEditsReplaceThePendingOccurrence(t *testing.T) {
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	b := setupCfg(t, now, scheduler.Config{})
	r, locs := b.kindReminder(t, store.Reminder{Kind: store.KindTimetable}, []string{"Asia/Riyadh"}, 0)
	row := store.DatedTime{ReminderID: r.ID, LocationID: locs[0], Date: "2026-03-01", LocalSec: 5 * 3600, CreatedAt: now.Add(-time.Hour)}
	require.NoError(t, b.env.DB.Create(&row).Error)
	ctx := context.Background()
	require.NoError(t, b.s.Plan(ctx))
	require.Equal(t, []string{"2026-03-01T02:00:00Z"}, fireTimes(b.occurrences(t), store.OccScheduled))

	require.NoError(t, b.env.DB.Model(&store.DatedTime{}).Where("reminder_id = ?", r.ID).Update("local_sec", 5*3600+120).Error)
	require.NoError(t, b.s.Plan(ctx))
	require.Equal(t, []string{"2026-03-01T02:02:00Z"}, fireTimes(b.occurrences(t), store.OccScheduled))
	require.Equal(t, []string{"2026-03-01T02:00:00Z"}, fireTimes(b.occurrences(t), store.OccCanceled))

	require.NoError(t, b.env.DB.Where("reminder_id = ?", r.ID).Delete(&store.DatedTime{}).Error)
	require.NoError(t, b.s.Plan(ctx))
	require.Empty(t, fireTimes(b.occurrences(t), store.OccScheduled))
}

// A one-off instant fires at each offset before it, at every location of
// the reminder; moving the instant replaces the pending occurrences.
func TestOnceFiresAtItsOffsets(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	at := time.Date(2026, 5, 1, 18, 0, 0, 0, time.UTC)
	b := setupCfg(t, now, scheduler.Config{})
	r, locs := b.kindReminder(t, store.Reminder{Kind: store.KindOnce, At: &at, Offsets: "600,60"}, []string{"UTC", "Asia/Dubai"}, 0)
	ctx := context.Background()
	require.NoError(t, b.s.Plan(ctx))
	occs := b.occurrences(t)
	require.Equal(t, []string{"2026-05-01T17:50:00Z", "2026-05-01T17:50:00Z", "2026-05-01T17:59:00Z", "2026-05-01T17:59:00Z"},
		fireTimes(occs, store.OccScheduled))
	seen := map[int64]int{}
	for _, o := range occs {
		seen[o.LocationID]++
	}
	require.Equal(t, map[int64]int{locs[0]: 2, locs[1]: 2}, seen)

	later := at.Add(time.Hour)
	require.NoError(t, b.env.DB.Model(&store.Reminder{}).Where("id = ?", r.ID).Update("at", later).Error)
	require.NoError(t, b.s.Plan(ctx))
	require.Equal(t, []string{"2026-05-01T18:50:00Z", "2026-05-01T18:50:00Z", "2026-05-01T18:59:00Z", "2026-05-01T18:59:00Z"},
		fireTimes(b.occurrences(t), store.OccScheduled))
	require.Len(t, fireTimes(b.occurrences(t), store.OccCanceled), 4)
}

// An event on a topic becomes one occurrence per location of the topic,
// and its tasks carry the event's data; canceling an event cancels its
// pending occurrences.
func TestEventOccurrencesCarryTheData(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	b := setupCfg(t, now, scheduler.Config{})
	r, _ := b.kindReminder(t, store.Reminder{Kind: store.KindTopic, Schema: `{"type":"object"}`}, []string{"UTC"}, 40)
	ev := store.Event{AppID: r.AppID, ReminderID: r.ID, RequestHash: "h", Data: `{"product":"shoes","discount":30}`, FireAt: now, CreatedAt: now}
	require.NoError(t, b.env.DB.Create(&ev).Error)
	later := store.Event{AppID: r.AppID, ReminderID: r.ID, RequestHash: "h2", Data: `{"product":"hats"}`, FireAt: now, CreatedAt: now}
	require.NoError(t, b.env.DB.Create(&later).Error)
	ctx := context.Background()
	require.NoError(t, b.s.Plan(ctx))
	occs := b.occurrences(t)
	require.Len(t, occs, 2, "two events at the same instant are two occurrences")

	require.NoError(t, b.env.DB.Model(&store.Event{}).Where("id = ?", later.ID).Update("canceled", true).Error)
	require.NoError(t, b.s.Plan(ctx))
	var mine store.Occurrence
	for _, o := range b.occurrences(t) {
		switch o.EventID {
		case ev.ID:
			require.Equal(t, store.OccScheduled, o.State)
			mine = o
		case later.ID:
			require.Equal(t, store.OccCanceled, o.State)
		default:
			t.Fatalf("occurrence %d has event %d", o.ID, o.EventID)
		}
	}
	require.NoError(t, b.s.Fire(ctx, mine))
	tasks, err := b.insp.ListPendingTasks(b.env.Queue, asynq.PageSize(100))
	require.NoError(t, err)
	require.NotEmpty(t, tasks)
	for _, task := range tasks {
		tk, err := queue.Decode(task.Type, task.Payload)
		require.NoError(t, err)
		for _, p := range tk.Parts {
			require.JSONEq(t, ev.Data, string(p.Data))
			var data map[string]any
			require.NoError(t, json.Unmarshal(p.Data, &data))
			require.Equal(t, "shoes", data["product"])
		}
	}
}

// Fault: the coordinator was down for three days (simulated by a planner
// mark three days old and a clock moved on). Checked: instants that passed
// during the outage are recorded as missed (never fired), one still inside
// its grace window fires late and reports how late, a scheduled occurrence
// from before the outage is recorded as missed by the firer, and nothing
// older than MaxCatchUp is recorded at all.
func TestCatchUpAfterAnOutage(t *testing.T) {
	down := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	now := down.Add(72*time.Hour + 2*time.Minute) // 2026-06-04 00:02
	b := setupCfg(t, down, scheduler.Config{MaxCatchUp: 48 * time.Hour})
	r, locs := b.kindReminder(t, store.Reminder{Kind: store.KindDaily, ValidForS: 600, GraceS: 300}, []string{"UTC"}, 12)
	require.NoError(t, b.env.DB.Create(&store.ReminderTime{ReminderID: r.ID, LocationID: locs[0], LocalSec: 0, CreatedAt: down.Add(-30 * 24 * time.Hour)}).Error)
	ctx := context.Background()
	// Before going down it planned 26 hours: 2026-06-01 00:00 (the instant
	// itself, inside grace) and 2026-06-02 00:00.
	require.NoError(t, b.s.Plan(ctx))
	require.Equal(t, []string{"2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z"}, fireTimes(b.occurrences(t), store.OccScheduled))
	first := b.occurrences(t)[0]
	require.NoError(t, b.s.Fire(ctx, first))

	b.clock.Set(now)
	require.NoError(t, b.s.Plan(ctx))
	occs := b.occurrences(t)
	require.Equal(t, []string{"2026-06-03T00:00:00Z"}, fireTimes(occs, store.OccMissed),
		"2026-06-03 was never planned and passed its grace during the outage; 06-02 waits for the firer; older than MaxCatchUp is not recorded")
	require.Equal(t, []string{"2026-06-02T00:00:00Z", "2026-06-04T00:00:00Z", "2026-06-05T00:00:00Z"}, fireTimes(occs, store.OccScheduled))

	for _, o := range occs {
		if o.State == store.OccScheduled && !o.FireAt.After(now) {
			require.NoError(t, b.s.Fire(ctx, o))
		}
	}
	byDay := map[string]store.Occurrence{}
	for _, o := range b.occurrences(t) {
		byDay[o.FireAt.UTC().Format(time.DateOnly)] = o
	}
	require.Equal(t, store.OccFiring, byDay["2026-06-01"].State, "fired before the outage (no workers run in this test)")
	require.Equal(t, store.OccMissed, byDay["2026-06-02"].State, "planned before the outage, found past its grace")
	require.Nil(t, byDay["2026-06-02"].FiredAt)
	require.Equal(t, store.OccFiring, byDay["2026-06-04"].State, "2 minutes late, inside the 5-minute grace: fired late")
	require.Equal(t, 2*time.Minute, byDay["2026-06-04"].FiredAt.Sub(byDay["2026-06-04"].FireAt))
	require.NotContains(t, byDay, "2026-05-31")
}
