package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/store"
)

// samplePath is the documented timetable sample: five prayers (fajr, dhuhr,
// asr, maghrib, isha) for jakarta, riyadh and london, 70 rows.
const samplePath = "../testdata/timetable/prayer-sample.csv"

var prayers = []string{"fajr", "dhuhr", "asr", "maghrib", "isha"}

// kindCounts returns the row counts of every table the kinds of reminder
// write, so that a refused request can be shown to have stored nothing.
func (b *bundle) kindCounts() map[string]int64 {
	b.t.Helper()
	return map[string]int64{
		"reminders":          b.count(&store.Reminder{}),
		"locations":          b.count(&store.Location{}),
		"reminder_times":     b.count(&store.ReminderTime{}),
		"reminder_locations": b.count(&store.ReminderLocation{}),
		"dated_times":        b.count(&store.DatedTime{}),
		"events":             b.count(&store.Event{}),
		"subscriptions":      b.count(&store.Subscription{}),
		"occurrences":        b.count(&store.Occurrence{}),
	}
}

// postCSV imports a timetable as app A.
func (b *bundle) postCSV(csv string) response {
	b.t.Helper()
	return b.as(http.MethodPost, "/v1/timetable", rawBody(csv), "Content-Type", "text/csv")
}

// putPrayers creates the five timetable reminders of the sample.
func (b *bundle) putPrayers() {
	b.t.Helper()
	for _, p := range prayers {
		b.putReminder(p, map[string]any{"kind": "timetable", "title": strings.ToUpper(p[:1]) + p[1:], "grace": "5m"})
	}
}

func readSample(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(samplePath)
	require.NoError(t, err)
	return string(data)
}

// locationOf returns app A's location called name.
func (b *bundle) locationOf(name string) store.Location {
	b.t.Helper()
	var l store.Location
	require.NoError(b.t, b.env.DB.Where("app_id = ? AND name = ?", b.appA.ID, name).First(&l).Error)
	return l
}

func TestCreateRemindersOfEachKind(t *testing.T) {
	b := setup(t)
	eventAt := time.Date(2026, 4, 1, 18, 0, 0, 0, time.UTC)

	t.Run("daily is the default kind; grace defaults to valid_for", func(t *testing.T) {
		got := b.putReminder("water", map[string]any{"title": "Water", "valid_for": "30m", "times": []api.ReminderTime{at("paris", "Europe/Paris", "09:00")}})
		require.Equal(t, "daily", got.Kind)
		require.Equal(t, "30m0s", got.ValidFor)
		require.Equal(t, "30m0s", got.Grace)
		require.Nil(t, got.At)
		require.Nil(t, got.Offsets)
		require.Nil(t, got.Schema)
		require.Equal(t, []api.Place{{Location: "paris", Zone: "Europe/Paris"}}, got.Locations)
		rem := b.storedReminder("water")
		require.Equal(t, store.KindDaily, rem.Kind)
		require.Equal(t, int64(1800), rem.GraceS)
	})

	t.Run("timetable", func(t *testing.T) {
		got := b.putReminder("fajr", map[string]any{"kind": "timetable", "title": "Fajr", "valid_for": "20m", "grace": "5m",
			"locations": []api.Place{{Location: "jakarta", Zone: "Asia/Jakarta"}}})
		require.Equal(t, "timetable", got.Kind)
		require.Equal(t, "5m0s", got.Grace)
		require.Equal(t, "20m0s", got.ValidFor)
		require.Empty(t, got.Times)
		require.Equal(t, []api.Place{{Location: "jakarta", Zone: "Asia/Jakarta"}}, got.Locations)
		rem := b.storedReminder("fajr")
		require.Equal(t, store.KindTimetable, rem.Kind)
		require.Equal(t, int64(300), rem.GraceS)
		require.Equal(t, int64(1200), rem.ValidForS)
		require.Equal(t, int64(1), b.count(&store.ReminderLocation{}, "reminder_id = ?", rem.ID))
	})

	t.Run("once with offsets and no locations fires at the global location", func(t *testing.T) {
		r := b.as(http.MethodPut, "/v1/reminders/launch", map[string]any{"kind": "once", "title": "Live in 10 minutes",
			"at": "2026-04-01T20:00:00+02:00", "offsets": []string{"10m", "1m", "600s", "0s"}})
		var got api.Reminder
		requireJSON(t, r, http.StatusCreated, &got)
		require.Equal(t, "once", got.Kind)
		require.NotNil(t, got.At)
		require.Equal(t, eventAt, *got.At, "at is returned in UTC")
		require.Equal(t, []string{"10m0s", "1m0s", "0s"}, got.Offsets, "a repeated offset counts once")
		require.Equal(t, []api.Place{api.GlobalPlace}, got.Locations)
		require.Empty(t, got.Times)
		rem := b.storedReminder("launch")
		require.Equal(t, "600,60,0", rem.Offsets)
		require.True(t, eventAt.Equal(*rem.At))
		require.Equal(t, "UTC", b.locationOf("global").Zone)

		// GET returns the same.
		var again api.Reminder
		requireJSON(t, b.as(http.MethodGet, "/v1/reminders/launch", nil), http.StatusOK, &again)
		require.Equal(t, got, again)
	})

	t.Run("once without offsets fires at its instant; with locations, there only", func(t *testing.T) {
		got := b.putReminder("sale", map[string]any{"kind": "once", "title": "Sale", "at": eventAt,
			"locations": []api.Place{{Location: "paris", Zone: "Europe/Paris"}, {Location: "tokyo", Zone: "Asia/Tokyo"}}})
		require.Equal(t, []string{"0s"}, got.Offsets)
		require.Equal(t, "", b.storedReminder("sale").Offsets)
		require.Equal(t, []api.Place{{Location: "paris", Zone: "Europe/Paris"}, {Location: "tokyo", Zone: "Asia/Tokyo"}}, got.Locations)
	})

	t.Run("topic: its schema refuses unknown fields unless it says otherwise", func(t *testing.T) {
		schema := `{"type":"object","properties":{"product":{"type":"string"}},"required":["product"]}`
		got := b.putReminder("flash", map[string]any{"kind": "topic", "title": "Flash sale", "schema": json.RawMessage(schema)})
		require.Equal(t, "topic", got.Kind)
		require.JSONEq(t, `{"type":"object","properties":{"product":{"type":"string"}},"required":["product"],"additionalProperties":false}`, string(got.Schema))
		require.Equal(t, []api.Place{api.GlobalPlace}, got.Locations)
		require.Nil(t, got.At)

		open := `{"type":"object","additionalProperties":true}`
		got = b.putReminder("open", map[string]any{"kind": "topic", "title": "Open", "schema": json.RawMessage(open)})
		require.JSONEq(t, open, string(got.Schema))
	})

	t.Run("the list shows every kind", func(t *testing.T) {
		var list struct {
			Reminders []api.Reminder `json:"reminders"`
		}
		requireJSON(t, b.as(http.MethodGet, "/v1/reminders", nil), http.StatusOK, &list)
		kinds := map[string]string{}
		for _, r := range list.Reminders {
			kinds[r.Key] = r.Kind
		}
		require.Equal(t, map[string]string{"water": "daily", "fajr": "timetable", "launch": "once", "sale": "once", "flash": "topic", "open": "topic"}, kinds)
	})
}

func TestCreateReminderRejectsBadKinds(t *testing.T) {
	b := setup(t)
	b.putReminder("existing", map[string]any{"kind": "once", "title": "E", "at": "2026-04-01T18:00:00Z"})
	schema := json.RawMessage(`{"type":"object","properties":{"product":{"type":"string"}}}`)
	manyOffsets := make([]string, 21)
	for i := range manyOffsets {
		manyOffsets[i] = fmt.Sprintf("%dm", i+1)
	}
	onceAt := func(extra map[string]any) map[string]any {
		m := map[string]any{"kind": "once", "title": "T", "at": "2026-04-01T18:00:00Z"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	times := []api.ReminderTime{at("paris", "Europe/Paris", "09:00")}
	for _, tc := range []struct {
		name    string
		body    any
		status  int
		mention []string
	}{
		{"unknown kind", map[string]any{"kind": "weekly", "title": "T", "times": times}, 422, []string{"kind: must be daily, timetable, once, topic or prayer"}},
		{"kind in capitals", map[string]any{"kind": "Once", "title": "T", "at": "2026-04-01T18:00:00Z"}, 422, []string{"kind:"}},
		{"times on a timetable reminder", map[string]any{"kind": "timetable", "title": "T", "times": times}, 422, []string{"times: only daily"}},
		{"times on a once reminder", onceAt(map[string]any{"times": times}), 422, []string{"times: only daily"}},
		{"times on a topic", map[string]any{"kind": "topic", "title": "T", "schema": schema, "times": times}, 422, []string{"times: only daily"}},
		{"once without at", map[string]any{"kind": "once", "title": "T", "offsets": []string{"10m"}}, 422, []string{"at: is required"}},
		{"at on a daily reminder", map[string]any{"title": "T", "times": times, "at": "2026-04-01T18:00:00Z"}, 422, []string{"at: only once"}},
		{"at on a topic", map[string]any{"kind": "topic", "title": "T", "schema": schema, "at": "2026-04-01T18:00:00Z"}, 422, []string{"at: only once"}},
		{"at not a date-time", onceAt(map[string]any{"at": "tomorrow"}), 422, []string{"at: must be an RFC 3339 instant"}},
		{"offset not a duration", onceAt(map[string]any{"offsets": []string{"10m", "ten minutes"}}), 422, []string{"offsets[1]: must be a whole-second duration"}},
		{"negative offset", onceAt(map[string]any{"offsets": []string{"-5m"}}), 422, []string{"offsets[0]"}},
		{"offset over 720h", onceAt(map[string]any{"offsets": []string{"721h"}}), 422, []string{"offsets[0]", "720h"}},
		{"offset with a fraction of a second", onceAt(map[string]any{"offsets": []string{"1.5s"}}), 422, []string{"offsets[0]", "whole-second"}},
		{"21 offsets", onceAt(map[string]any{"offsets": manyOffsets}), 422, []string{"offsets: at most 20"}},
		{"offsets on a daily reminder", map[string]any{"title": "T", "times": times, "offsets": []string{"10m"}}, 422, []string{"offsets: only once"}},
		{"offsets on a timetable", map[string]any{"kind": "timetable", "title": "T", "offsets": []string{"10m"}}, 422, []string{"offsets: only once"}},
		{"topic without a schema", map[string]any{"kind": "topic", "title": "T"}, 422, []string{"schema: is required for a topic"}},
		{"topic with a null schema", map[string]any{"kind": "topic", "title": "T", "schema": nil}, 422, []string{"schema:"}},
		{"schema an array", map[string]any{"kind": "topic", "title": "T", "schema": []int{1}}, 422, []string{"schema: must be a JSON object"}},
		{"schema a string", map[string]any{"kind": "topic", "title": "T", "schema": `{"type":"object"}`}, 422, []string{"schema: must be a JSON object"}},
		{"schema of a string", map[string]any{"kind": "topic", "title": "T", "schema": map[string]any{"type": "string"}}, 422, []string{`schema: must describe an object`}},
		{"schema without a type", map[string]any{"kind": "topic", "title": "T", "schema": map[string]any{"properties": map[string]any{}}}, 422, []string{`schema: must describe an object`}},
		{"invalid JSON Schema: unknown type", map[string]any{"kind": "topic", "title": "T",
			"schema": map[string]any{"type": "object", "properties": map[string]any{"product": map[string]any{"type": "text"}}}}, 422, []string{"schema: is not a valid JSON Schema"}},
		{"invalid JSON Schema: required not a list", map[string]any{"kind": "topic", "title": "T",
			"schema": map[string]any{"type": "object", "required": "product"}}, 422, []string{"schema: is not a valid JSON Schema"}},
		{"schema on a daily reminder", map[string]any{"title": "T", "times": times, "schema": schema}, 422, []string{"schema: only topic"}},
		{"grace longer than valid_for", onceAt(map[string]any{"valid_for": "10m", "grace": "11m"}), 422, []string{"grace: must be between 1s and valid_for"}},
		{"grace longer than the default valid_for", onceAt(map[string]any{"grace": "16m"}), 422, []string{"grace: must be between"}},
		{"grace under a second", onceAt(map[string]any{"grace": "500ms"}), 422, []string{"grace: must be between"}},
		{"grace not a duration", onceAt(map[string]any{"grace": "soon"}), 422, []string{`grace: must be a duration`}},
		{"several errors at once", map[string]any{"kind": "once", "title": "T", "offsets": []string{"-1m"}, "grace": "1h", "times": times},
			422, []string{"at: is required", "offsets[0]", "grace:", "times: only daily"}},
		{"a location with two zones", onceAt(map[string]any{"locations": []api.Place{{Location: "x", Zone: "UTC"}, {Location: "x", Zone: "Asia/Tokyo"}}}),
			422, []string{"locations[1].zone"}},
		{"a location without a zone", onceAt(map[string]any{"locations": []api.Place{{Location: "x"}}}), 422, []string{"locations[0].zone"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.kindCounts()
			r := b.as(http.MethodPut, "/v1/reminders/new", tc.body)
			requireProblem(t, r, tc.status, tc.mention...)
			require.Equal(t, before, b.kindCounts(), "rows changed")
			requireProblem(t, b.as(http.MethodGet, "/v1/reminders/new", nil), http.StatusNotFound)
			// Replacing an existing reminder with the same body fails the same way
			// and leaves it as it was.
			r = b.as(http.MethodPut, "/v1/reminders/existing", tc.body)
			requireProblem(t, r, tc.status)
			require.Equal(t, before, b.kindCounts(), "rows changed")
			require.Equal(t, store.KindOnce, b.storedReminder("existing").Kind)
		})
	}
}

// Subscribers of a once or topic reminder without locations are grouped at
// the global location; they need not name it. A reminder with several
// locations still needs one named.
func TestSubscribersOfOnceAndTopicNeedNoLocation(t *testing.T) {
	b := setup(t)
	b.putReminder("launch", map[string]any{"kind": "once", "title": "Launch", "at": "2026-04-01T18:00:00Z", "offsets": []string{"10m"}})
	b.putReminder("flash", map[string]any{"kind": "topic", "title": "Flash", "schema": map[string]any{"type": "object"}})
	b.putReminder("two", map[string]any{"kind": "once", "title": "Two", "at": "2026-04-01T18:00:00Z",
		"locations": []api.Place{{Location: "paris", Zone: "Europe/Paris"}, {Location: "tokyo", Zone: "Asia/Tokyo"}}})
	global := b.locationOf("global")

	for _, key := range []string{"launch", "flash"} {
		t.Run(key, func(t *testing.T) {
			var s api.Subscriber
			requireJSON(t, b.as(http.MethodPut, "/v1/reminders/"+key+"/subscribers/u1", map[string]any{}), http.StatusOK, &s)
			require.Equal(t, "global", s.Location)
			b.subscribe(key, []sub{{UserID: "u2"}, {UserID: "u3", Location: "global"}})
			rem := b.storedReminder(key)
			require.Equal(t, int64(3), b.count(&store.Subscription{}, "reminder_id = ? AND location_id = ?", rem.ID, global.ID))
			members := b.indexed(grouping.Loc{Reminder: rem.ID, Location: global.ID}, rem.Groups)
			require.Len(t, members, 3)
		})
	}

	before := b.kindCounts()
	requireProblem(t, b.as(http.MethodPut, "/v1/reminders/two/subscribers/u1", map[string]any{}), http.StatusUnprocessableEntity, "location")
	requireProblem(t, b.as(http.MethodPost, "/v1/reminders/two/subscribers", map[string]any{"subscribers": []sub{{UserID: "u1"}}}),
		http.StatusUnprocessableEntity, "subscribers[0].location")
	require.Equal(t, before, b.kindCounts())
	var s api.Subscriber
	requireJSON(t, b.as(http.MethodPut, "/v1/reminders/two/subscribers/u1", map[string]any{"location": "tokyo"}), http.StatusOK, &s)
	require.Equal(t, "tokyo", s.Location)
}

func TestTimetableImportSample(t *testing.T) {
	b := setup(t)
	b.putPrayers()
	sample := readSample(t)

	var out struct {
		Rows             int `json:"rows"`
		Reminders        int `json:"reminders"`
		LocationsCreated int `json:"locations_created"`
	}
	requireJSON(t, b.postCSV(sample), http.StatusOK, &out)
	require.Equal(t, 70, out.Rows)
	require.Equal(t, 5, out.Reminders)
	require.Equal(t, 3, out.LocationsCreated)

	require.Equal(t, int64(70), b.count(&store.DatedTime{}))
	for _, p := range prayers {
		require.Equal(t, int64(14), b.count(&store.DatedTime{}, "reminder_id = ?", b.storedReminder(p).ID), p)
	}
	require.Equal(t, "Asia/Jakarta", b.locationOf("jakarta").Zone)
	require.Equal(t, "Asia/Riyadh", b.locationOf("riyadh").Zone)
	require.Equal(t, "Europe/London", b.locationOf("london").Zone)
	require.Equal(t, int64(3), b.count(&store.Location{}))
	require.Equal(t, int64(15), b.count(&store.ReminderLocation{}), "every prayer at every city")

	var dt store.DatedTime
	require.NoError(t, b.env.DB.Where("reminder_id = ? AND location_id = ? AND date = ?",
		b.storedReminder("fajr").ID, b.locationOf("london").ID, "2026-03-29").First(&dt).Error)
	require.Equal(t, 5*3600+8*60, dt.LocalSec)

	// The reminder lists the locations its timetable names.
	var fajr api.Reminder
	requireJSON(t, b.as(http.MethodGet, "/v1/reminders/fajr", nil), http.StatusOK, &fajr)
	require.Equal(t, []api.Place{{Location: "jakarta", Zone: "Asia/Jakarta"}, {Location: "london", Zone: "Europe/London"},
		{Location: "riyadh", Zone: "Asia/Riyadh"}}, fajr.Locations)
	// Subscribers can be at those locations.
	b.subscribe("fajr", []sub{{UserID: "u1", Location: "london"}, {UserID: "u2", Location: "jakarta"}})

	// Importing it again changes nothing; no location is created twice.
	requireJSON(t, b.postCSV(sample), http.StatusOK, &out)
	require.Equal(t, 70, out.Rows)
	require.Equal(t, 0, out.LocationsCreated)
	require.Equal(t, int64(70), b.count(&store.DatedTime{}))
	require.Equal(t, int64(15), b.count(&store.ReminderLocation{}))

	// A row for a stored (name, location, date) replaces its time; a
	// location the app has needs no zone; the last row of the file wins.
	requireJSON(t, b.postCSV("date,name,location,local_time\r\n2026-03-29,fajr,london,05:10\r\n2026-03-29,fajr,london,05:09:30\r\n"), http.StatusOK, &out)
	require.Equal(t, 1, out.Rows)
	require.NoError(t, b.env.DB.Where("reminder_id = ? AND location_id = ? AND date = ?",
		b.storedReminder("fajr").ID, b.locationOf("london").ID, "2026-03-29").First(&dt).Error)
	require.Equal(t, 5*3600+9*60+30, dt.LocalSec)
	require.Equal(t, int64(70), b.count(&store.DatedTime{}))

	// Replacing the reminder (a new title) keeps its timetable's locations.
	b.putReminder("fajr", map[string]any{"kind": "timetable", "title": "Dawn"})
	require.Equal(t, int64(3), b.count(&store.ReminderLocation{}, "reminder_id = ?", b.storedReminder("fajr").ID))

	// Another app's key sees none of it.
	requireProblem(t, b.req(http.MethodGet, "/v1/reminders/fajr/timetable", b.keyB, nil), http.StatusNotFound)
}

func TestTimetableImportRejects(t *testing.T) {
	b := setup(t)
	b.putPrayers()
	b.putReminder("water", reminder("Water", at("paris", "Europe/Paris", "09:00")))
	requireJSON(t, b.req(http.MethodPut, "/v1/reminders/b-only", b.keyB, map[string]any{"kind": "timetable", "title": "B"}), http.StatusCreated, nil)
	// The app has jakarta already.
	requireJSON(t, b.postCSV("location,zone,date,name,local_time\njakarta,Asia/Jakarta,2026-03-27,fajr,04:39\n"), http.StatusOK, nil)

	const header = "location,zone,date,name,local_time\n"
	good := header + "riyadh,Asia/Riyadh,2026-03-27,fajr,04:32\n" + "riyadh,Asia/Riyadh,2026-03-27,isha,19:37\n"
	var manyBad strings.Builder
	manyBad.WriteString(header)
	for i := range 30 {
		fmt.Fprintf(&manyBad, "riyadh,Asia/Riyadh,2026-03-%02d,fajr,04:6%d\n", i+1, i%10)
	}
	for _, tc := range []struct {
		name, csv, ctype string
		status           int
		mention          []string
		errors           int // the number of field errors, if not 0
	}{
		{name: "one bad row among good ones", csv: good + "riyadh,Asia/Riyadh,2026-02-30,asr,15:26\n" + "riyadh,Asia/Riyadh,2026-03-28,asr,15:26\n",
			status: 422, mention: []string{"none were stored", "line 4: date", "2026-02-30"}, errors: 1},
		{name: "a bad time", csv: good + "riyadh,Asia/Riyadh,2026-03-28,asr,24:00\n",
			status: 422, mention: []string{"line 4: local_time", "HH:MM"}, errors: 1},
		{name: "a bad zone", csv: good + "mars,Mars/Olympus,2026-03-28,asr,15:00\n",
			status: 422, mention: []string{"line 4: zone", "Mars/Olympus"}, errors: 1},
		{name: "unknown reminder name", csv: good + "riyadh,Asia/Riyadh,2026-03-27,tahajjud,03:00\n",
			status: 422, mention: []string{"line 4: name", `no reminder "tahajjud"`}, errors: 1},
		{name: "another app's reminder", csv: good + "riyadh,Asia/Riyadh,2026-03-27,b-only,03:00\n",
			status: 422, mention: []string{"line 4: name", `no reminder "b-only"`}, errors: 1},
		{name: "a row for a daily reminder", csv: good + "paris,Europe/Paris,2026-03-27,water,09:00\n",
			status: 422, mention: []string{"line 4: name", `reminder "water" is a daily reminder`}, errors: 1},
		{name: "a new location without a zone column", csv: "location,date,name,local_time\nriyadh,2026-03-27,fajr,04:32\njakarta,2026-03-28,fajr,04:39\n",
			status: 422, mention: []string{"line 2: zone", `location "riyadh" is new: its zone is required`}, errors: 1},
		{name: "a new location with an empty zone", csv: good + "cairo,,2026-03-27,fajr,04:20\n",
			status: 422, mention: []string{"line 4: zone", `"cairo" is new`}, errors: 1},
		{name: "a zone other than the location's", csv: good + "jakarta,Asia/Makassar,2026-03-28,fajr,04:39\n",
			status: 422, mention: []string{"line 4: zone", `location "jakarta" has zone "Asia/Jakarta"`}, errors: 1},
		{name: "a zone other than that of a daily reminder's location", csv: good + "paris,Europe/Berlin,2026-03-28,fajr,06:00\n",
			status: 422, mention: []string{"line 4: zone", `location "paris" has zone "Europe/Paris"`}, errors: 1},
		{name: "one new location given two zones", csv: good + "riyadh,Asia/Dubai,2026-03-28,fajr,04:31\n",
			status: 422, mention: []string{"line 4: zone", `"Asia/Riyadh" and "Asia/Dubai"`}},
		{name: "more than 20 bad rows lists 20", csv: manyBad.String(), status: 422, mention: []string{"line 2: local_time", "line 21: local_time"}, errors: 20},
		{name: "a header and no rows", csv: header, status: 422, mention: []string{"no rows"}},
		{name: "empty body", csv: "", status: 400, mention: []string{"empty"}},
		{name: "missing column", csv: "location,zone,date,name\nx,UTC,2026-03-27,fajr\n", status: 400, mention: []string{`"local_time" is missing`}},
		{name: "unknown column", csv: "location,zone,date,name,time\nx,UTC,2026-03-27,fajr,04:00\n", status: 400, mention: []string{`unknown column "time"`}},
		{name: "JSON content type", csv: good, ctype: "application/json", status: 415, mention: []string{"text/csv"}},
		{name: "text/plain", csv: good, ctype: "text/plain", status: 415, mention: []string{"text/csv"}},
		{name: "spreadsheet content type", csv: good, ctype: "application/vnd.ms-excel", status: 415, mention: []string{"text/csv"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.kindCounts()
			ctype := tc.ctype
			if ctype == "" {
				ctype = "text/csv; charset=utf-8"
			}
			r := b.as(http.MethodPost, "/v1/timetable", rawBody(tc.csv), "Content-Type", ctype)
			p := requireProblem(t, r, tc.status, tc.mention...)
			if tc.errors > 0 {
				require.Len(t, p.Errors, tc.errors, "body: %s", r.Body)
			}
			require.Equal(t, before, b.kindCounts(), "rows changed")
		})
	}
	// What stayed: the one row imported first.
	require.Equal(t, int64(1), b.count(&store.DatedTime{}))
}

func TestTimetableListAndEditRows(t *testing.T) {
	b := setup(t)
	b.putPrayers()
	b.putReminder("water", reminder("Water", at("paris", "Europe/Paris", "09:00")))
	requireJSON(t, b.postCSV(readSample(t)), http.StatusOK, nil)

	type listing struct {
		Reminder string             `json:"reminder"`
		Rows     []api.TimetableRow `json:"rows"`
	}
	list := func(query string) []string {
		t.Helper()
		var out listing
		requireJSON(t, b.as(http.MethodGet, "/v1/reminders/fajr/timetable"+query, nil), http.StatusOK, &out)
		require.Equal(t, "fajr", out.Reminder)
		var got []string
		for _, r := range out.Rows {
			got = append(got, fmt.Sprintf("%s %s %s %s %s", r.Date, r.Location, r.Zone, r.LocalTime, r.FireAt.Format(time.RFC3339)))
		}
		return got
	}
	require.Len(t, list(""), 14)
	// By date then location; fire_at across London's change to summer time.
	require.Equal(t, []string{
		"2026-03-28 london Europe/London 04:10:00 2026-03-28T04:10:00Z",
		"2026-03-29 london Europe/London 05:08:00 2026-03-29T04:08:00Z",
		"2026-03-30 london Europe/London 05:05:00 2026-03-30T04:05:00Z",
	}, list("?location=london&from=2026-03-28&to=2026-03-30"))
	require.Equal(t, []string{
		"2026-03-29 jakarta Asia/Jakarta 04:38:00 2026-03-28T21:38:00Z",
		"2026-03-29 london Europe/London 05:08:00 2026-03-29T04:08:00Z",
		"2026-03-29 riyadh Asia/Riyadh 04:30:00 2026-03-29T01:30:00Z",
	}, list("?from=2026-03-29&to=2026-03-29"))
	require.Equal(t, []string{
		"2026-06-20 london Europe/London 01:16:00 2026-06-20T00:16:00Z",
		"2026-06-21 london Europe/London 01:16:00 2026-06-21T00:16:00Z",
	}, list("?from=2026-06-01"))
	require.Len(t, list("?limit=2"), 2)
	require.Empty(t, list("?location=cairo"))

	requireProblem(t, b.as(http.MethodGet, "/v1/reminders/fajr/timetable?from=29-03-2026", nil), http.StatusBadRequest, "from")
	requireProblem(t, b.as(http.MethodGet, "/v1/reminders/fajr/timetable?to=x", nil), http.StatusBadRequest, "to")
	requireProblem(t, b.as(http.MethodGet, "/v1/reminders/fajr/timetable?limit=0", nil), http.StatusBadRequest, "limit")
	requireProblem(t, b.as(http.MethodGet, "/v1/reminders/water/timetable", nil), http.StatusConflict, "daily")
	requireProblem(t, b.as(http.MethodGet, "/v1/reminders/nope/timetable", nil), http.StatusNotFound, `"nope"`)

	fajr := b.storedReminder("fajr")
	path := "/v1/reminders/fajr/timetable/"
	t.Run("put replaces a row; a time in the spring-forward gap fires after it", func(t *testing.T) {
		var row api.TimetableRow
		requireJSON(t, b.as(http.MethodPut, path+"london/2026-03-29", map[string]string{"local_time": "01:30"}), http.StatusOK, &row)
		require.Equal(t, api.TimetableRow{Location: "london", Zone: "Europe/London", Date: "2026-03-29", LocalTime: "01:30:00",
			FireAt: time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)}, row)
		require.Equal(t, int64(70), b.count(&store.DatedTime{}))
		require.Contains(t, list("?location=london&from=2026-03-29&to=2026-03-29"), "2026-03-29 london Europe/London 01:30:00 2026-03-29T01:00:00Z")
		// At fall-back the first of the two instants.
		requireJSON(t, b.as(http.MethodPut, path+"london/2026-10-25", map[string]string{"local_time": "01:30:00", "zone": "Europe/London"}), http.StatusOK, &row)
		require.Equal(t, time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), row.FireAt)
		require.Equal(t, int64(71), b.count(&store.DatedTime{}))
	})
	t.Run("put at a new location with its zone creates it", func(t *testing.T) {
		var row api.TimetableRow
		requireJSON(t, b.as(http.MethodPut, path+"kathmandu/2026-03-29", map[string]string{"local_time": "04:50", "zone": "Asia/Kathmandu"}), http.StatusOK, &row)
		require.Equal(t, time.Date(2026, 3, 28, 23, 5, 0, 0, time.UTC), row.FireAt, "UTC+5:45")
		l := b.locationOf("kathmandu")
		require.Equal(t, "Asia/Kathmandu", l.Zone)
		require.Equal(t, int64(1), b.count(&store.ReminderLocation{}, "reminder_id = ? AND location_id = ?", fajr.ID, l.ID))
		require.Equal(t, int64(1), b.count(&store.DatedTime{}, "reminder_id = ? AND location_id = ?", fajr.ID, l.ID))
	})
	t.Run("bad puts store nothing", func(t *testing.T) {
		for _, tc := range []struct {
			name, path string
			body       any
			status     int
			mention    string
		}{
			{"new location without zone", path + "cairo/2026-03-29", map[string]string{"local_time": "04:20"}, 422, "zone"},
			{"new location with a bad zone", path + "cairo/2026-03-29", map[string]string{"local_time": "04:20", "zone": "Africa/Kairo"}, 422, "Africa/Kairo"},
			{"another zone for a location", path + "london/2026-03-31", map[string]string{"local_time": "05:00", "zone": "Europe/Dublin"}, 409, "Europe/London"},
			{"bad date", path + "london/2026-02-30", map[string]string{"local_time": "05:00"}, 422, "2026-02-30"},
			{"bad time", path + "london/2026-03-31", map[string]string{"local_time": "5am"}, 422, "local_time"},
			{"no time", path + "london/2026-03-31", map[string]string{}, 422, "local_time"},
			{"unknown field", path + "london/2026-03-31", map[string]string{"local_time": "05:00", "tz": "UTC"}, 400, "tz"},
			{"bad location name", path + "new%20york/2026-03-31", map[string]string{"local_time": "05:00", "zone": "America/New_York"}, 422, "location"},
			{"a daily reminder", "/v1/reminders/water/timetable/paris/2026-03-31", map[string]string{"local_time": "05:00"}, 409, "daily"},
			{"unknown reminder", "/v1/reminders/nope/timetable/paris/2026-03-31", map[string]string{"local_time": "05:00"}, 404, `"nope"`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := b.kindCounts()
				requireProblem(t, b.as(http.MethodPut, tc.path, tc.body), tc.status, tc.mention)
				require.Equal(t, before, b.kindCounts())
			})
		}
	})
	t.Run("delete one row, then 404", func(t *testing.T) {
		before := b.count(&store.DatedTime{})
		r := b.as(http.MethodDelete, path+"riyadh/2026-03-27", nil)
		require.Equal(t, http.StatusNoContent, r.Status, "body: %s", r.Body)
		require.Equal(t, before-1, b.count(&store.DatedTime{}))
		require.Zero(t, b.count(&store.DatedTime{}, "reminder_id = ? AND location_id = ? AND date = ?", fajr.ID, b.locationOf("riyadh").ID, "2026-03-27"))
		// The other prayers of that day stay.
		require.Equal(t, int64(1), b.count(&store.DatedTime{}, "reminder_id = ? AND location_id = ? AND date = ?",
			b.storedReminder("isha").ID, b.locationOf("riyadh").ID, "2026-03-27"))
		requireProblem(t, b.as(http.MethodDelete, path+"riyadh/2026-03-27", nil), http.StatusNotFound, "riyadh", "2026-03-27")
		requireProblem(t, b.as(http.MethodDelete, path+"cairo/2026-03-27", nil), http.StatusNotFound, "cairo")
		requireProblem(t, b.as(http.MethodDelete, path+"riyadh/27-03-2026", nil), http.StatusUnprocessableEntity)
		requireProblem(t, b.req(http.MethodDelete, path+"riyadh/2026-03-28", b.keyB, nil), http.StatusNotFound)
		require.Equal(t, before-1, b.count(&store.DatedTime{}))
	})
}

// flashSchema declares a flash sale: a product (required) and a discount.
var flashSchema = map[string]any{
	"type": "object",
	"properties": map[string]any{
		"product":  map[string]any{"type": "string", "minLength": 1},
		"discount": map[string]any{"type": "integer", "minimum": 1, "maximum": 90},
	},
	"required": []string{"product"},
}

// eventNow is the fixed clock of the event tests.
var eventNow = time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)

func TestPostEvent(t *testing.T) {
	b := setupWith(t, api.Config{Now: func() time.Time { return eventNow }})
	b.putReminder("flash", map[string]any{"kind": "topic", "title": "Flash sale", "schema": flashSchema, "grace": "5m"})
	b.putReminder("water", reminder("Water", at("paris", "Europe/Paris", "09:00")))
	topic := b.storedReminder("flash")

	// Valid: 202, Location, the event as stored.
	r := b.as(http.MethodPost, "/v1/events", map[string]any{"topic": "flash", "data": map[string]any{"product": "Running shoes", "discount": 30}})
	var ev api.Event
	requireJSON(t, r, http.StatusAccepted, &ev)
	require.Positive(t, ev.ID)
	require.Equal(t, "/v1/events/"+strconv.FormatInt(ev.ID, 10), r.Header.Get("Location"))
	require.Equal(t, "flash", ev.Topic)
	require.JSONEq(t, `{"product":"Running shoes","discount":30}`, string(ev.Data))
	require.Equal(t, eventNow, ev.FireAt, "no at: fires now")
	require.False(t, ev.Canceled)
	require.Equal(t, []api.Occurrence{}, ev.Occurrences)
	var stored store.Event
	require.NoError(t, b.env.DB.First(&stored, ev.ID).Error)
	require.Equal(t, topic.ID, stored.ReminderID)
	require.Equal(t, b.appA.ID, stored.AppID)
	require.Nil(t, stored.IdempotencyKey)
	require.True(t, eventNow.Equal(stored.FireAt))

	var got api.Event
	requireJSON(t, b.as(http.MethodGet, r.Header.Get("Location"), nil), http.StatusOK, &got)
	require.Equal(t, ev, got)

	// A later instant.
	later := eventNow.Add(3 * time.Hour)
	requireJSON(t, b.as(http.MethodPost, "/v1/events", map[string]any{"topic": "flash", "data": map[string]any{"product": "Hats"}, "at": later}), http.StatusAccepted, &ev)
	require.Equal(t, later, ev.FireAt)
	// Within the grace window in the past.
	requireJSON(t, b.as(http.MethodPost, "/v1/events", map[string]any{"topic": "flash", "data": map[string]any{"product": "Hats"}, "at": eventNow.Add(-4 * time.Minute)}), http.StatusAccepted, &ev)
	require.Equal(t, int64(3), b.count(&store.Event{}))

	for _, tc := range []struct {
		name    string
		body    any
		status  int
		mention []string
	}{
		{"missing required field", map[string]any{"topic": "flash", "data": map[string]any{"discount": 30}}, 422, []string{"product", "nothing was stored"}},
		{"unknown field", map[string]any{"topic": "flash", "data": map[string]any{"product": "Hats", "colour": "red"}}, 422, []string{"colour"}},
		{"wrong type", map[string]any{"topic": "flash", "data": map[string]any{"product": "Hats", "discount": "30%"}}, 422, []string{"data.discount"}},
		{"out of range", map[string]any{"topic": "flash", "data": map[string]any{"product": "Hats", "discount": 95}}, 422, []string{"data.discount"}},
		{"several fields", map[string]any{"topic": "flash", "data": map[string]any{"discount": 0, "colour": "red"}}, 422, []string{"product", "colour", "data.discount"}},
		{"no data", map[string]any{"topic": "flash"}, 422, []string{"product"}},
		{"data not an object", map[string]any{"topic": "flash", "data": []string{"Hats"}}, 422, []string{"data"}},
		{"no topic", map[string]any{"data": map[string]any{"product": "Hats"}}, 422, []string{"topic: is required"}},
		{"a daily reminder", map[string]any{"topic": "water", "data": map[string]any{}}, 422, []string{`"water" is a daily reminder`, "topic: must be the key of a topic"}},
		{"unknown topic", map[string]any{"topic": "nope", "data": map[string]any{}}, 404, []string{`"nope"`}},
		{"at too far in the past", map[string]any{"topic": "flash", "data": map[string]any{"product": "Hats"}, "at": eventNow.Add(-6 * time.Minute)}, 422, []string{"at:", "grace window 5m0s"}},
		{"at too far ahead", map[string]any{"topic": "flash", "data": map[string]any{"product": "Hats"}, "at": eventNow.Add(367 * 24 * time.Hour)}, 422, []string{"at:", "366 days"}},
		{"unknown top-level field", map[string]any{"topic": "flash", "data": map[string]any{"product": "Hats"}, "when": "now"}, 400, []string{"when"}},
		{"not JSON", rawBody(`topic=flash`), 400, []string{"not valid JSON"}},
		{"body over the limit", map[string]any{"topic": "flash", "data": map[string]any{"product": repeat("a", 70<<10)}}, 413, []string{"over the limit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.kindCounts()
			requireProblem(t, b.as(http.MethodPost, "/v1/events", tc.body), tc.status, tc.mention...)
			require.Equal(t, before, b.kindCounts(), "rows changed")
		})
	}
	requireProblem(t, b.as(http.MethodPost, "/v1/events", rawBody(`{"topic":"flash","data":{"product":"Hats"}}`), "Content-Type", "text/plain"),
		http.StatusUnsupportedMediaType)
	requireProblem(t, b.req(http.MethodPost, "/v1/events", b.keyB, map[string]any{"topic": "flash", "data": map[string]any{"product": "Hats"}}),
		http.StatusNotFound, `"flash"`)
	require.Equal(t, int64(3), b.count(&store.Event{}))
}

func TestPostEventIdempotencyKey(t *testing.T) {
	b := setupWith(t, api.Config{Now: func() time.Time { return eventNow }})
	b.putReminder("flash", map[string]any{"kind": "topic", "title": "Flash sale", "schema": flashSchema, "grace": "5m"})
	b.putReminder("other", map[string]any{"kind": "topic", "title": "Other", "schema": flashSchema})
	body := map[string]any{"topic": "flash", "data": map[string]any{"product": "Hats", "discount": 10}, "at": eventNow.Add(time.Hour)}

	r := b.as(http.MethodPost, "/v1/events", body, "Idempotency-Key", "order-1")
	var first api.Event
	requireJSON(t, r, http.StatusAccepted, &first)
	require.Empty(t, r.Header.Get("Idempotent-Replayed"))

	// A retry: 200, the first event, marked as a replay; one row.
	r = b.as(http.MethodPost, "/v1/events", body, "Idempotency-Key", "order-1")
	var again api.Event
	requireJSON(t, r, http.StatusOK, &again)
	require.Equal(t, "true", r.Header.Get("Idempotent-Replayed"))
	require.Equal(t, first, again)
	require.Equal(t, r.Header.Get("Location"), "/v1/events/"+strconv.FormatInt(first.ID, 10))
	require.Equal(t, int64(1), b.count(&store.Event{}))
	// The same request with other spacing and another order of its
	// top-level fields is the same request.
	r = b.as(http.MethodPost, "/v1/events", rawBody(fmt.Sprintf(`{"at":%q, "data":{ "discount": 10, "product":"Hats" },"topic":"flash"}`,
		eventNow.Add(time.Hour).Format(time.RFC3339))), "Idempotency-Key", "order-1")
	requireJSON(t, r, http.StatusOK, &again)
	require.Equal(t, first.ID, again.ID)

	// The same key for another request: 422, still one row.
	for name, other := range map[string]map[string]any{
		"other data":  {"topic": "flash", "data": map[string]any{"product": "Hats", "discount": 20}, "at": eventNow.Add(time.Hour)},
		"other at":    {"topic": "flash", "data": map[string]any{"product": "Hats", "discount": 10}, "at": eventNow.Add(2 * time.Hour)},
		"no at":       {"topic": "flash", "data": map[string]any{"product": "Hats", "discount": 10}},
		"other topic": {"topic": "other", "data": map[string]any{"product": "Hats", "discount": 10}, "at": eventNow.Add(time.Hour)},
	} {
		t.Run(name, func(t *testing.T) {
			requireProblem(t, b.as(http.MethodPost, "/v1/events", other, "Idempotency-Key", "order-1"), http.StatusUnprocessableEntity, "Idempotency-Key")
			require.Equal(t, int64(1), b.count(&store.Event{}))
		})
	}

	// Another key is another event; no key twice is two events.
	requireJSON(t, b.as(http.MethodPost, "/v1/events", body, "Idempotency-Key", "order-2"), http.StatusAccepted, nil)
	requireJSON(t, b.as(http.MethodPost, "/v1/events", body), http.StatusAccepted, nil)
	requireJSON(t, b.as(http.MethodPost, "/v1/events", body), http.StatusAccepted, nil)
	require.Equal(t, int64(4), b.count(&store.Event{}))
	// Keys belong to an app: app B may use order-1 for its own event.
	requireJSON(t, b.req(http.MethodPut, "/v1/reminders/flash", b.keyB, map[string]any{"kind": "topic", "title": "B", "schema": flashSchema}), http.StatusCreated, nil)
	requireJSON(t, b.req(http.MethodPost, "/v1/events", b.keyB, body, "Idempotency-Key", "order-1"), http.StatusAccepted, nil)
	require.Equal(t, int64(5), b.count(&store.Event{}))
	requireProblem(t, b.as(http.MethodPost, "/v1/events", body, "Idempotency-Key", repeat("k", 201)), http.StatusBadRequest, "Idempotency-Key")
}

// A retry with the same Idempotency-Key gets the first post's answer even
// when it comes after the event's instant has left the grace window (a
// business system retrying after its own outage): the request is the same,
// so nothing is refused and nothing is stored twice.
func TestPostEventRetryAfterGraceIsReplayed(t *testing.T) {
	clock := newTestClock(eventNow)
	b := setupWith(t, api.Config{Now: clock.Now})
	b.putReminder("flash", map[string]any{"kind": "topic", "title": "Flash sale", "schema": flashSchema, "grace": "5m"})
	body := map[string]any{"topic": "flash", "data": map[string]any{"product": "Hats"}, "at": eventNow.Add(time.Minute)}
	var first, again api.Event
	requireJSON(t, b.as(http.MethodPost, "/v1/events", body, "Idempotency-Key", "order-1"), http.StatusAccepted, &first)

	clock.Set(eventNow.Add(10 * time.Minute))
	r := b.as(http.MethodPost, "/v1/events", body, "Idempotency-Key", "order-1")
	requireJSON(t, r, http.StatusOK, &again)
	require.Equal(t, first.ID, again.ID)
	require.Equal(t, "true", r.Header.Get("Idempotent-Replayed"))
	require.Equal(t, int64(1), b.count(&store.Event{}))
}

// testClock is an API clock the test sets.
type testClock struct{ now atomic.Pointer[time.Time] }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.Set(t)
	return c
}

func (c *testClock) Set(t time.Time) { c.now.Store(&t) }
func (c *testClock) Now() time.Time  { return *c.now.Load() }

func TestCancelEvent(t *testing.T) {
	b := setupWith(t, api.Config{Now: func() time.Time { return eventNow }})
	b.putReminder("flash", map[string]any{"kind": "topic", "title": "Flash sale", "schema": flashSchema})
	post := func(at time.Time) api.Event {
		t.Helper()
		var ev api.Event
		requireJSON(t, b.as(http.MethodPost, "/v1/events", map[string]any{"topic": "flash", "data": map[string]any{"product": "Hats"}, "at": at}), http.StatusAccepted, &ev)
		return ev
	}
	ev := post(eventNow.Add(time.Hour))
	r := b.as(http.MethodDelete, "/v1/events/"+strconv.FormatInt(ev.ID, 10), nil)
	require.Equal(t, http.StatusNoContent, r.Status, "body: %s", r.Body)
	var got api.Event
	requireJSON(t, b.as(http.MethodGet, "/v1/events/"+strconv.FormatInt(ev.ID, 10), nil), http.StatusOK, &got)
	require.True(t, got.Canceled)
	var stored store.Event
	require.NoError(t, b.env.DB.First(&stored, ev.ID).Error)
	require.True(t, stored.Canceled)

	// An event whose occurrence has fired cannot be canceled.
	fired := post(eventNow.Add(2 * time.Hour))
	global := b.locationOf("global")
	firedAt := eventNow.Add(2*time.Hour + 40*time.Millisecond)
	occ := store.Occurrence{ReminderID: b.storedReminder("flash").ID, LocationID: global.ID, EventID: fired.ID, FireAt: fired.FireAt,
		ExpiresAt: fired.FireAt.Add(15 * time.Minute), State: store.OccFiring, GroupsTotal: 256, GroupsDone: 3, FiredAt: &firedAt}
	require.NoError(t, b.env.DB.Create(&occ).Error)
	requireProblem(t, b.as(http.MethodDelete, "/v1/events/"+strconv.FormatInt(fired.ID, 10), nil), http.StatusConflict, "already fired")
	requireJSON(t, b.as(http.MethodGet, "/v1/events/"+strconv.FormatInt(fired.ID, 10), nil), http.StatusOK, &got)
	require.False(t, got.Canceled)
	require.Len(t, got.Occurrences, 1)
	o := got.Occurrences[0]
	require.Equal(t, occ.ID, o.ID)
	require.Equal(t, fired.ID, o.EventID)
	require.Equal(t, "flash", o.Reminder)
	require.Equal(t, "global", o.Location)
	require.Equal(t, store.OccFiring, o.State)
	require.Equal(t, 3, o.GroupsDone)
	require.NotNil(t, o.LateMs)
	require.Equal(t, int64(40), *o.LateMs)
	require.False(t, o.Late)

	// An event with only scheduled occurrences can be canceled.
	sched := post(eventNow.Add(3 * time.Hour))
	require.NoError(t, b.env.DB.Create(&store.Occurrence{ReminderID: b.storedReminder("flash").ID, LocationID: global.ID, EventID: sched.ID,
		FireAt: sched.FireAt, ExpiresAt: sched.FireAt.Add(15 * time.Minute), State: store.OccScheduled, GroupsTotal: 256}).Error)
	r = b.as(http.MethodDelete, "/v1/events/"+strconv.FormatInt(sched.ID, 10), nil)
	require.Equal(t, http.StatusNoContent, r.Status, "body: %s", r.Body)

	requireProblem(t, b.as(http.MethodDelete, "/v1/events/999999", nil), http.StatusNotFound)
	requireProblem(t, b.as(http.MethodGet, "/v1/events/999999", nil), http.StatusNotFound)
	requireProblem(t, b.as(http.MethodGet, "/v1/events/abc", nil), http.StatusNotFound)
	// Another app sees none of them and cancels nothing.
	requireProblem(t, b.req(http.MethodGet, "/v1/events/"+strconv.FormatInt(fired.ID, 10), b.keyB, nil), http.StatusNotFound)
	requireProblem(t, b.req(http.MethodDelete, "/v1/events/"+strconv.FormatInt(post(eventNow.Add(time.Hour)).ID, 10), b.keyB, nil), http.StatusNotFound)
	require.Equal(t, int64(2), b.count(&store.Event{}, "canceled = ?", true))
}

type upcomingOut struct {
	Reminder string         `json:"reminder"`
	Kind     string         `json:"kind"`
	From     time.Time      `json:"from"`
	To       time.Time      `json:"to"`
	Upcoming []api.Upcoming `json:"upcoming"`
}

func (b *bundle) upcoming(key string, hours int) upcomingOut {
	b.t.Helper()
	var out upcomingOut
	requireJSON(b.t, b.as(http.MethodGet, fmt.Sprintf("/v1/reminders/%s/upcoming?hours=%d", key, hours), nil), http.StatusOK, &out)
	require.Equal(b.t, key, out.Reminder)
	return out
}

func upcomingLines(out upcomingOut) []string {
	var got []string
	for _, u := range out.Upcoming {
		line := fmt.Sprintf("%s %s %s %s", u.FireAt.Format(time.RFC3339), u.Location, u.Local, u.LocalTime)
		if u.EventID != 0 {
			line += " event " + strconv.FormatInt(u.EventID, 10)
		}
		got = append(got, line)
	}
	return got
}

func TestUpcomingTimetable(t *testing.T) {
	now := time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)
	clock := newTestClock(now)
	b := setupWith(t, api.Config{Now: clock.Now})
	b.putPrayers()
	requireJSON(t, b.postCSV(readSample(t)), http.StatusOK, nil)

	out := b.upcoming("fajr", 48)
	require.Equal(t, "timetable", out.Kind)
	require.Equal(t, now, out.From)
	require.Equal(t, now.Add(48*time.Hour), out.To)
	// London's clocks go forward on the 29th at 01:00 UTC: its fajr moves an
	// hour later on the clock, not in UTC.
	require.Equal(t, []string{
		"2026-03-28T21:38:00Z jakarta 2026-03-29T04:38:00+07:00 04:38:00",
		"2026-03-29T01:30:00Z riyadh 2026-03-29T04:30:00+03:00 04:30:00",
		"2026-03-29T04:08:00Z london 2026-03-29T05:08:00+01:00 05:08:00",
		"2026-03-29T21:38:00Z jakarta 2026-03-30T04:38:00+07:00 04:38:00",
		"2026-03-30T01:29:00Z riyadh 2026-03-30T04:29:00+03:00 04:29:00",
		"2026-03-30T04:05:00Z london 2026-03-30T05:05:00+01:00 05:05:00",
	}, upcomingLines(out))
	// isha's rows at London in June: the one after midnight is on its date.
	clock.Set(time.Date(2026, 6, 20, 12, 0, 0, 0, time.UTC))
	require.Equal(t, []string{
		"2026-06-20T23:49:00Z london 2026-06-21T00:49:00+01:00 00:49:00",
		"2026-06-21T23:49:00Z london 2026-06-22T00:49:00+01:00 00:49:00",
	}, upcomingLines(b.upcoming("isha", 48)))
	// Nothing imported that far: an empty list.
	clock.Set(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	require.Equal(t, "[]", strings.TrimSpace(string(mustJSON(t, b.upcoming("fajr", 24).Upcoming))))
}

// upcoming's local_time is the reminder time as defined for a timetable
// (api/openapi.yaml); a row in the spring-forward gap fires after the gap.
func TestUpcomingTimetableTimeInTheGap(t *testing.T) {
	now := time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)
	b := setupWith(t, api.Config{Now: func() time.Time { return now }})
	b.putReminder("vigil", map[string]any{"kind": "timetable", "title": "Vigil"})
	requireJSON(t, b.as(http.MethodPut, "/v1/reminders/vigil/timetable/london/2026-03-29", map[string]string{"local_time": "01:30", "zone": "Europe/London"}), http.StatusOK, nil)
	require.Equal(t, []string{"2026-03-29T01:00:00Z london 2026-03-29T02:00:00+01:00 01:30:00"}, upcomingLines(b.upcoming("vigil", 24)))
}

func TestUpcomingOnce(t *testing.T) {
	clock := newTestClock(time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC))
	b := setupWith(t, api.Config{Now: clock.Now})
	b.putReminder("stream", map[string]any{"kind": "once", "title": "Live", "at": "2026-04-01T18:00:00Z", "offsets": []string{"10m", "1m", "0s"},
		"locations": []api.Place{{Location: "paris", Zone: "Europe/Paris"}, {Location: "kathmandu", Zone: "Asia/Kathmandu"}}})
	b.putReminder("global-sale", map[string]any{"kind": "once", "title": "Sale", "at": "2026-04-01T12:05:00Z", "offsets": []string{"10m", "1m"}})

	out := b.upcoming("stream", 24)
	require.Equal(t, "once", out.Kind)
	require.Equal(t, []string{
		"2026-04-01T17:50:00Z kathmandu 2026-04-01T23:35:00+05:45 23:35:00",
		"2026-04-01T17:50:00Z paris 2026-04-01T19:50:00+02:00 19:50:00",
		"2026-04-01T17:59:00Z kathmandu 2026-04-01T23:44:00+05:45 23:44:00",
		"2026-04-01T17:59:00Z paris 2026-04-01T19:59:00+02:00 19:59:00",
		"2026-04-01T18:00:00Z kathmandu 2026-04-01T23:45:00+05:45 23:45:00",
		"2026-04-01T18:00:00Z paris 2026-04-01T20:00:00+02:00 20:00:00",
	}, upcomingLines(out))
	// Too short a window: only what falls inside.
	require.Empty(t, b.upcoming("stream", 5).Upcoming)
	// An offset already past is not listed; the global location is UTC.
	require.Equal(t, []string{"2026-04-01T12:04:00Z global 2026-04-01T12:04:00Z 12:04:00"}, upcomingLines(b.upcoming("global-sale", 1)))
	// After the instant, nothing.
	clock.Set(time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC))
	require.Empty(t, b.upcoming("stream", 744).Upcoming)
}

func TestUpcomingTopic(t *testing.T) {
	now := eventNow
	b := setupWith(t, api.Config{Now: func() time.Time { return now }})
	b.putReminder("flash", map[string]any{"kind": "topic", "title": "Flash", "schema": flashSchema,
		"locations": []api.Place{{Location: "jakarta", Zone: "Asia/Jakarta"}, {Location: "riyadh", Zone: "Asia/Riyadh"}}})
	post := func(at time.Time) int64 {
		t.Helper()
		var ev api.Event
		requireJSON(t, b.as(http.MethodPost, "/v1/events", map[string]any{"topic": "flash", "data": map[string]any{"product": "Hats"}, "at": at}), http.StatusAccepted, &ev)
		return ev.ID
	}
	inHour := post(now.Add(time.Hour))
	canceled := post(now.Add(2 * time.Hour))
	r := b.as(http.MethodDelete, "/v1/events/"+strconv.FormatInt(canceled, 10), nil)
	require.Equal(t, http.StatusNoContent, r.Status)
	post(now.Add(-time.Minute)) // already due: not upcoming
	post(now.Add(30 * time.Hour))

	out := b.upcoming("flash", 24)
	require.Equal(t, "topic", out.Kind)
	id := strconv.FormatInt(inHour, 10)
	require.Equal(t, []string{
		"2026-04-01T13:00:00Z jakarta 2026-04-01T20:00:00+07:00 20:00:00 event " + id,
		"2026-04-01T13:00:00Z riyadh 2026-04-01T16:00:00+03:00 16:00:00 event " + id,
	}, upcomingLines(out))
	require.Len(t, b.upcoming("flash", 48).Upcoming, 4)
}

// GET /v1/occurrences/{id} shows one occurrence of the app's, with its
// progress and lateness; another app's occurrence is 404.
func TestGetOccurrence(t *testing.T) {
	b := setup(t)
	b.putPrayers()
	requireJSON(t, b.postCSV(readSample(t)), http.StatusOK, nil)
	requireJSON(t, b.req(http.MethodPut, "/v1/reminders/b-daily", b.keyB, reminder("B", at("tokyo", "Asia/Tokyo", "09:00"))), http.StatusCreated, nil)

	fireAt := time.Date(2026, 3, 29, 4, 8, 0, 0, time.UTC)
	firedAt := fireAt.Add(8 * time.Second)
	doneAt := firedAt.Add(time.Minute)
	missAt := fireAt.Add(5 * time.Minute)
	mine := store.Occurrence{ReminderID: b.storedReminder("fajr").ID, LocationID: b.locationOf("london").ID, FireAt: fireAt,
		ExpiresAt: fireAt.Add(15 * time.Minute), MissAt: &missAt, State: store.OccDone, GroupsTotal: 256, GroupsDone: 256,
		Delivered: 1200, Failed: 4, Expired: 2, FiredAt: &firedAt, DoneAt: &doneAt}
	require.NoError(t, b.env.DB.Create(&mine).Error)
	var bRem store.Reminder
	require.NoError(t, b.env.DB.Where("app_id = ? AND `key` = ?", b.appB.ID, "b-daily").First(&bRem).Error)
	var tokyo store.Location
	require.NoError(t, b.env.DB.Where("app_id = ? AND name = ?", b.appB.ID, "tokyo").First(&tokyo).Error)
	theirs := store.Occurrence{ReminderID: bRem.ID, LocationID: tokyo.ID, FireAt: fireAt, ExpiresAt: fireAt.Add(time.Hour), State: store.OccScheduled, GroupsTotal: 256}
	require.NoError(t, b.env.DB.Create(&theirs).Error)

	var o api.Occurrence
	requireJSON(t, b.as(http.MethodGet, fmt.Sprintf("/v1/occurrences/%d", mine.ID), nil), http.StatusOK, &o)
	late := int64(8000)
	require.Equal(t, api.Occurrence{ID: mine.ID, Reminder: "fajr", Location: "london", Zone: "Europe/London", FireAt: fireAt,
		ExpiresAt: fireAt.Add(15 * time.Minute), MissAt: &missAt, State: store.OccDone, GroupsDone: 256, GroupsTotal: 256,
		Delivered: 1200, Failed: 4, Expired: 2, FiredAt: &firedAt, DoneAt: &doneAt, LateMs: &late, Late: true}, o)

	requireProblem(t, b.as(http.MethodGet, fmt.Sprintf("/v1/occurrences/%d", theirs.ID), nil), http.StatusNotFound)
	var other api.Occurrence
	requireJSON(t, b.req(http.MethodGet, fmt.Sprintf("/v1/occurrences/%d", theirs.ID), b.keyB, nil), http.StatusOK, &other)
	require.Equal(t, "b-daily", other.Reminder)
	require.Nil(t, other.FiredAt)
	require.Nil(t, other.LateMs)
	require.False(t, other.Late)
	require.Equal(t, other.ExpiresAt, *other.MissAt, "no grace window of its own: miss_at is expires_at")
	requireProblem(t, b.req(http.MethodGet, fmt.Sprintf("/v1/occurrences/%d", mine.ID), b.keyB, nil), http.StatusNotFound)
	for _, id := range []string{"0", "-1", "abc", "99999999"} {
		requireProblem(t, b.as(http.MethodGet, "/v1/occurrences/"+id, nil), http.StatusNotFound)
	}
	requireProblem(t, b.req(http.MethodGet, fmt.Sprintf("/v1/occurrences/%d", mine.ID), "", nil), http.StatusUnauthorized)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return data
}

// BenchmarkTimetableImport imports a year of one timetable reminder's times
// for 1,000 locations (365,000 rows, about 17 MB of CSV) through the HTTP
// handler into MariaDB. Every iteration imports the same file for the same
// reminder: the first creates the locations and rows, later ones replace
// the rows' times.
func BenchmarkTimetableImport(b *testing.B) {
	env := testenv.New(b)
	index := grouping.NewIndex(env.Redis, env.DB, env.Prefix)
	srv := httptest.NewServer(api.New(api.Config{ChangesChannel: env.Prefix + "changes"}, env.DB, env.Redis, index, env.Log).Handler())
	b.Cleanup(srv.Close)
	_, key, err := api.CreateApp(context.Background(), env.DB, "bench")
	require.NoError(b, err)
	client := &api.Client{Base: srv.URL, Key: key, HTTP: srv.Client()}
	ctx := context.Background()
	require.NoError(b, client.Do(ctx, http.MethodPut, "/v1/reminders/fajr", map[string]any{"kind": "timetable", "title": "Fajr"}, nil))

	const locations, days = 1000, 365
	zones := []string{"Asia/Jakarta", "Asia/Riyadh", "Europe/London", "America/New_York", "Asia/Kathmandu", "Australia/Adelaide"}
	var csv strings.Builder
	csv.WriteString("location,zone,date,name,local_time\n")
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for l := range locations {
		zone := zones[l%len(zones)]
		for d := range days {
			date := start.AddDate(0, 0, d).Format(time.DateOnly)
			sec := 4*3600 + (l*7+d*13)%5400
			fmt.Fprintf(&csv, "city-%04d,%s,%s,fajr,%02d:%02d:%02d\n", l, zone, date, sec/3600, sec/60%60, sec%60)
		}
	}
	body := csv.String()
	const rows = locations * days
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for range b.N {
		var out struct {
			Rows int `json:"rows"`
		}
		require.NoError(b, client.Send(ctx, http.MethodPost, "/v1/timetable", "text/csv", strings.NewReader(body), &out))
		require.Equal(b, rows, out.Rows)
	}
	b.StopTimer()
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	var n int64
	require.NoError(b, env.DB.Model(&store.DatedTime{}).Count(&n).Error)
	require.Equal(b, int64(rows), n)
}

// TestListEvents posts five events to a topic through the real API and
// MariaDB and lists them. Checks: newest first with their occurrences once
// planned, pages of limit joined by next/before with none repeated or lost,
// another topic's events left out, bad parameters 400, a daily reminder
// 400, and another app's key 404.
func TestListEvents(t *testing.T) {
	b := setupWith(t, api.Config{Now: func() time.Time { return eventNow }})
	b.putReminder("flash", map[string]any{"kind": "topic", "title": "Flash sale", "schema": flashSchema, "grace": "5m"})
	b.putReminder("other", map[string]any{"kind": "topic", "title": "Other", "schema": map[string]any{"type": "object"}})
	b.putReminder("water", reminder("Water", at("paris", "Europe/Paris", "09:00")))
	var posted []int64
	for i := range 5 {
		var ev api.Event
		requireJSON(t, b.as(http.MethodPost, "/v1/events", map[string]any{"topic": "flash", "data": map[string]any{"product": "p" + strconv.Itoa(i)}}), http.StatusAccepted, &ev)
		posted = append(posted, ev.ID)
	}
	requireJSON(t, b.as(http.MethodPost, "/v1/events", map[string]any{"topic": "other", "data": map[string]any{}}), http.StatusAccepted, &api.Event{})

	type page struct {
		Events []api.Event `json:"events"`
		Next   string      `json:"next"`
	}
	var got []int64
	path := "/v1/events?topic=flash&limit=2"
	for range 4 {
		var p page
		requireJSON(t, b.as(http.MethodGet, path, nil), http.StatusOK, &p)
		for _, ev := range p.Events {
			require.Equal(t, "flash", ev.Topic)
			require.NotNil(t, ev.Occurrences)
			got = append(got, ev.ID)
		}
		if p.Next == "" {
			break
		}
		path = "/v1/events?topic=flash&limit=2&before=" + p.Next
	}
	slices.Reverse(posted)
	require.Equal(t, posted, got, "every event once, newest first")

	var all page
	requireJSON(t, b.as(http.MethodGet, "/v1/events?topic=flash", nil), http.StatusOK, &all)
	require.Len(t, all.Events, 5)
	require.Empty(t, all.Next, "a page under the limit is the last")
	require.JSONEq(t, `{"product":"p4"}`, string(all.Events[0].Data))

	requireProblem(t, b.as(http.MethodGet, "/v1/events", nil), http.StatusBadRequest, "topic")
	requireProblem(t, b.as(http.MethodGet, "/v1/events?topic=flash&limit=101", nil), http.StatusBadRequest, "limit")
	requireProblem(t, b.as(http.MethodGet, "/v1/events?topic=flash&before=x", nil), http.StatusBadRequest, "before")
	requireProblem(t, b.as(http.MethodGet, "/v1/events?topic=water", nil), http.StatusBadRequest, "topic reminders")
	requireProblem(t, b.req(http.MethodGet, "/v1/events?topic=flash", b.keyB, nil), http.StatusNotFound, `"flash"`)
}
