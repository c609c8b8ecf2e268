package api_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/store"
)

// held is a bulk request whose body is still being sent: the server has
// given it its place among the bulk requests and waits for the rest.
type held struct {
	body *io.PipeWriter
	done chan response
}

// hold sends the start of a bulk request with key and waits until the API
// runs inProgress bulk requests, this one among them.
func (b *bundle) hold(path, key, contentType, start string, inProgress int) *held {
	b.t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, b.url+path, pr)
	require.NoError(b.t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", contentType)
	h := &held{body: pw, done: make(chan response, 1)}
	go func() {
		res, err := b.client.Do(req)
		if err != nil {
			h.done <- response{Body: []byte(err.Error())}
			return
		}
		defer res.Body.Close()
		data, _ := io.ReadAll(res.Body)
		h.done <- response{Status: res.StatusCode, Header: res.Header, Body: data}
	}()
	_, err = io.WriteString(pw, start)
	require.NoError(b.t, err)
	testenv.WaitUntil(b.t, 10*time.Second, "the held request to be taken", func() bool { return b.api.BulkInProgress() == inProgress })
	return h
}

// finish sends the rest of the body and returns the answer.
func (h *held) finish(t *testing.T, rest string) response {
	t.Helper()
	_, err := io.WriteString(h.body, rest)
	require.NoError(t, err)
	require.NoError(t, h.body.Close())
	select {
	case r := <-h.done:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("the held request was not answered")
		return response{}
	}
}

const subsPath = "/v1/reminders/r/subscribers"

func subsBody(users ...string) string {
	parts := make([]string, len(users))
	for i, u := range users {
		parts[i] = fmt.Sprintf(`{"user_id":%q,"location":"paris"}`, u)
	}
	return `{"subscribers":[` + strings.Join(parts, ",") + `]}`
}

// Injects: two bulk requests of app A held open (the server has them and
// waits for the rest of their bodies), under the default limit of
// DefaultBulkPerApp (2) per app. Checks: a third bulk request of app A,
// subscribers or timetable, is answered 429 problem+json with Retry-After
// and stores nothing, while app B's bulk request is answered 200 and
// stored; once a held request is answered, app A's next one is taken.
func TestBulkRequestsOfOneAppAreLimited(t *testing.T) {
	b := setup(t)
	require.Equal(t, 2, api.DefaultBulkPerApp)
	b.putReminder("r", reminder("T", at("paris", "Europe/Paris", "09:00")))
	b.putReminder("fajr", map[string]any{"kind": "timetable", "title": "Fajr"})
	requireJSON(t, b.req(http.MethodPut, "/v1/reminders/r", b.keyB, reminder("T", at("paris", "Europe/Paris", "09:00"))), http.StatusCreated, nil)

	first := b.hold(subsPath, b.keyA, "application/json", `{"subscribers":[`, 1)
	second := b.hold(subsPath, b.keyA, "application/json", `{"subscribers":[`, 2)

	r := b.as(http.MethodPost, subsPath, rawBody(subsBody("a3")))
	requireProblem(t, r, http.StatusTooManyRequests, "2 bulk requests in progress")
	require.Equal(t, "1", r.Header.Get("Retry-After"))
	r = b.as(http.MethodPost, "/v1/timetable", rawBody("location,zone,date,name,local_time\nparis,Europe/Paris,2026-03-01,fajr,06:00\n"), "Content-Type", "text/csv")
	requireProblem(t, r, http.StatusTooManyRequests)
	require.Equal(t, "1", r.Header.Get("Retry-After"))
	require.Zero(t, b.count(&store.Subscription{}))
	require.Zero(t, b.count(&store.DatedTime{}))

	// The other app is not held up.
	var out map[string]int
	requireJSON(t, b.req(http.MethodPost, subsPath, b.keyB, rawBody(subsBody("b1", "b2"))), http.StatusOK, &out)
	require.Equal(t, 2, out["registered"])

	requireJSON(t, first.finish(t, `{"user_id":"a1","location":"paris"}]}`), http.StatusOK, nil)
	requireJSON(t, b.as(http.MethodPost, subsPath, rawBody(subsBody("a4"))), http.StatusOK, nil)
	requireJSON(t, second.finish(t, `{"user_id":"a2","location":"paris"}]}`), http.StatusOK, nil)
	require.Equal(t, int64(5), b.count(&store.Subscription{}))
	require.Zero(t, b.api.BulkInProgress())
}

// Injects: BulkTotal 2 and two bulk requests of app A held open. Checks:
// app B's bulk request, within its own share, is answered 503 with
// Retry-After (the replica has all it takes) and stores nothing; once one
// held request is answered, app B's is taken.
func TestBulkRequestsOfAReplicaAreLimited(t *testing.T) {
	b := setupWith(t, api.Config{BulkTotal: 2})
	b.putReminder("r", reminder("T", at("paris", "Europe/Paris", "09:00")))
	requireJSON(t, b.req(http.MethodPut, "/v1/reminders/r", b.keyB, reminder("T", at("paris", "Europe/Paris", "09:00"))), http.StatusCreated, nil)

	first := b.hold(subsPath, b.keyA, "application/json", `{"subscribers":[`, 1)
	second := b.hold(subsPath, b.keyA, "application/json", `{"subscribers":[`, 2)
	r := b.req(http.MethodPost, subsPath, b.keyB, rawBody(subsBody("b1")))
	requireProblem(t, r, http.StatusServiceUnavailable, "2 bulk requests in progress")
	require.Equal(t, "1", r.Header.Get("Retry-After"))
	require.Zero(t, b.count(&store.Subscription{}))

	requireJSON(t, first.finish(t, `{"user_id":"a1","location":"paris"}]}`), http.StatusOK, nil)
	requireJSON(t, b.req(http.MethodPost, subsPath, b.keyB, rawBody(subsBody("b1"))), http.StatusOK, nil)
	requireJSON(t, second.finish(t, `{"user_id":"a2","location":"paris"}]}`), http.StatusOK, nil)
	require.Equal(t, int64(3), b.count(&store.Subscription{}))
}

// Injects: values over what their columns hold (a topic schema over 64 KB,
// one that grows past it when stored with < escaped, event data of 65,536
// to 69,632 bytes, a language tag of 51 characters, a zone path of 83
// bytes that the host's zone directory resolves, an Idempotency-Key that
// is not UTF-8) and bodies over their limits. Checks: each is answered 422
// naming the field, or 413, or 400, never 500; nothing is stored; and
// nothing the API or its SQL log wrote is anywhere near the size of the
// values (a failed INSERT would have logged the whole value).
func TestLargeValuesAreRefusedAtTheDoor(t *testing.T) {
	b := setup(t)
	topic := func(schema map[string]any) map[string]any {
		return map[string]any{"kind": "topic", "title": "Sale", "schema": schema}
	}
	described := func(desc string) map[string]any {
		return map[string]any{"type": "object", "description": desc, "properties": map[string]any{"x": map[string]any{"type": "string"}}}
	}
	for _, tc := range []struct {
		name    string
		body    any
		status  int
		mention []string
	}{
		{"a schema over 64 KB", topic(described(repeat("a", 70000))), 422, []string{"schema", "65535"}},
		{"a schema that grows past 64 KB when stored", topic(described(repeat("<", 20000))), 422, []string{"schema", "65535"}},
		{"a schema over the body limit", topic(described(repeat("a", 1<<20))), 413, []string{"limit"}},
		{"a long language tag", map[string]any{"title": "T", "lang": "en-a-aaaaaaaa-bbbbbbbb-cccccccc-dddddddd-x-eeeeeeee",
			"times": []api.ReminderTime{at("paris", "Europe/Paris", "09:00")}}, 422, []string{"lang", "35"}},
		{"a zone path", reminder("T", at("paris", repeat("./", 40)+"UTC", "09:00")), 422, []string{"times[0].zone", "64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireProblem(t, b.as(http.MethodPut, "/v1/reminders/big", tc.body), tc.status, tc.mention...)
			require.Zero(t, b.count(&store.Reminder{}))
			require.Zero(t, b.count(&store.Location{}))
		})
	}

	b.putReminder("sale", topic(map[string]any{"type": "object", "properties": map[string]any{"x": map[string]any{"type": "string"}}}))
	event := func(x string) map[string]any { return map[string]any{"topic": "sale", "data": map[string]any{"x": x}} }
	const wrap = len(`{"x":""}`)
	for _, tc := range []struct {
		name    string
		body    any
		header  []string
		status  int
		mention []string
	}{
		{"data of 65,536 bytes", event(repeat("a", 65536-wrap)), nil, 422, []string{"data", "65535", "65536"}},
		{"data of 69,000 bytes", event(repeat("a", 69000-wrap)), nil, 422, []string{"data", "65535"}},
		{"a body over the limit", event(repeat("a", 69700)), nil, 413, []string{"limit"}},
		{"an Idempotency-Key not UTF-8", event("a"), []string{"Idempotency-Key", "k\xff\xfe"}, 400, []string{"Idempotency-Key", "UTF-8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireProblem(t, b.as(http.MethodPost, "/v1/events", tc.body, tc.header...), tc.status, tc.mention...)
			require.Zero(t, b.count(&store.Event{}))
		})
	}
	// Exactly the limit is stored.
	requireJSON(t, b.as(http.MethodPost, "/v1/events", event(repeat("a", api.MaxEventData-wrap))), http.StatusAccepted, nil)
	require.Equal(t, int64(1), b.count(&store.Event{}))
	require.Less(t, b.logs.longest(), 4096, "a log line holds a value")
}

// timetableCSV returns a timetable of the reminder fajr at locations
// loc0..loc(locations-1), days days from 2026-01-01 each, at 05:mm where mm
// is minute.
func timetableCSV(locations, days, minute int) string {
	var s strings.Builder
	s.WriteString("location,zone,date,name,local_time\n")
	day0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for l := range locations {
		for d := range days {
			fmt.Fprintf(&s, "loc%d,Asia/Jakarta,%s,fajr,05:%02d\n", l, day0.AddDate(0, 0, d).Format(time.DateOnly), minute)
		}
	}
	return s.String()
}

// Injects: MaxTimetable 4096, then the default limit (16 MiB) and a
// timetable whose one quoted field runs past it. Checks: over the limit is
// 413 naming it and stores nothing; a timetable within it is stored.
func TestTimetableUploadLimit(t *testing.T) {
	b := setupWith(t, api.Config{MaxTimetable: 4096})
	b.putReminder("fajr", map[string]any{"kind": "timetable", "title": "Fajr"})
	over := timetableCSV(1, 120, 0) // about 5 KB
	require.Greater(t, len(over), 4096)
	requireProblem(t, b.postCSV(over), http.StatusRequestEntityTooLarge, "4096")
	require.Zero(t, b.count(&store.DatedTime{}))
	require.Zero(t, b.count(&store.Location{}))
	requireJSON(t, b.postCSV(timetableCSV(1, 60, 0)), http.StatusOK, nil)
	require.Equal(t, int64(60), b.count(&store.DatedTime{}))

	d := setup(t)
	require.Equal(t, 16<<20, api.DefaultMaxTimetable)
	d.putReminder("fajr", map[string]any{"kind": "timetable", "title": "Fajr"})
	huge := "location,zone,date,name,local_time\n\"" + repeat("x", api.DefaultMaxTimetable) + "\",UTC,2026-01-01,fajr,05:00\n"
	requireProblem(t, d.postCSV(huge), http.StatusRequestEntityTooLarge, fmt.Sprint(api.DefaultMaxTimetable))
	require.Zero(t, d.count(&store.DatedTime{}))
}

// Injects: a timetable of 2,500 rows, with a gorm callback on the API's
// pool that records each INSERT into dated_times and the transaction it
// runs in. Checks: the rows are written 1,000 at most per statement, in
// three transactions, and all of them are stored.
func TestTimetableImportWritesInBatches(t *testing.T) {
	b := setup(t)
	b.putReminder("fajr", map[string]any{"kind": "timetable", "title": "Fajr"})
	var mu sync.Mutex
	var sizes []int
	txs := map[gorm.ConnPool]bool{}
	require.NoError(t, b.db.Callback().Create().After("gorm:create").Register("test:dated", func(db *gorm.DB) {
		if db.Statement.Table != "dated_times" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, db.Statement.ReflectValue.Len())
		txs[db.Statement.ConnPool] = true
	}))

	var out struct{ Rows, LocationsCreated int }
	requireJSON(t, b.postCSV(timetableCSV(5, 500, 0)), http.StatusOK, &out)
	require.Equal(t, 2500, out.Rows)
	require.Equal(t, []int{1000, 1000, 500}, sizes)
	require.Len(t, txs, 3, "one transaction per 1,000 rows")
	require.Equal(t, int64(2500), b.count(&store.DatedTime{}))
	require.Equal(t, int64(5), b.count(&store.ReminderLocation{}))
}

// Injects: a real lock wait timeout in the middle of an import: another
// transaction holds the row of line 1,502 FOR UPDATE, and the API's pool
// waits at most 1s for a lock. Checks: the import is answered 500 that
// can be retried, the first batch of 1,000 rows stays; once the lock is
// gone, the same file sent again stores every row, each once, with the
// file's time.
func TestTimetableImportFailingMidwayIsCompletedByTheSameFile(t *testing.T) {
	b := setupOn(t, api.Config{}, "innodb_lock_wait_timeout=1")
	b.putReminder("fajr", map[string]any{"kind": "timetable", "title": "Fajr"})
	file := timetableCSV(5, 500, 30) // line 1,502 is loc3 on day 1 (rows go by location, then day)
	requireJSON(t, b.as(http.MethodPut, "/v1/reminders/fajr/timetable/loc3/2026-01-01", map[string]string{"local_time": "04:00", "zone": "Asia/Jakarta"}), http.StatusOK, nil)

	tx := b.env.DB.Begin()
	var locked store.DatedTime
	// By its primary key, so that only the row is locked, not the gaps
	// beside it that the first batch inserts into.
	require.NoError(t, tx.Raw("SELECT * FROM dated_times WHERE reminder_id = ? AND location_id = ? AND date = '2026-01-01' FOR UPDATE",
		b.storedReminder("fajr").ID, b.locationOf("loc3").ID).Scan(&locked).Error)
	require.Equal(t, 4*3600, locked.LocalSec)
	r := b.postCSV(file)
	require.NoError(t, tx.Rollback().Error)
	requireProblem(t, r, http.StatusInternalServerError, "can be retried")
	require.Equal(t, int64(1000+1), b.count(&store.DatedTime{}), "the first batch and the row set before")

	var out struct{ Rows int }
	requireJSON(t, b.postCSV(file), http.StatusOK, &out)
	require.Equal(t, 2500, out.Rows)
	require.Equal(t, int64(2500), b.count(&store.DatedTime{}))
	require.Equal(t, int64(2500), b.count(&store.DatedTime{}, "local_sec = ?", 5*3600+30*60))
	require.Less(t, b.logs.longest(), 4096)
}
