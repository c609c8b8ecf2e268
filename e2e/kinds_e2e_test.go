package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/internal/testenv"
)

// registerAnywhere subscribes users first..first+n-1 to key without naming a
// location (the reminder has one).
func (b *bundle) registerAnywhere(key string, first, n int) {
	b.t.Helper()
	subs := make([]map[string]string, n)
	for i := range subs {
		subs[i] = map[string]string{"user_id": strconv.Itoa(first + i)}
	}
	require.Equal(b.t, 200, b.call(http.MethodPost, "/v1/reminders/"+key+"/subscribers", map[string]any{"subscribers": subs}, nil))
}

// A business event posted on a topic reaches every subscriber of the topic
// once, with its data, through the group pipeline; a retried post with the
// same Idempotency-Key does not send it again.
func TestEventReachesEveryTopicSubscriberOnce(t *testing.T) {
	b := setup(t)
	b.startCoordinator("c1")
	b.startWorker("w1")
	b.startWorker("w2")

	require.Equal(t, 201, b.call(http.MethodPut, "/v1/reminders/flash-sale", map[string]any{
		"kind": "topic", "title": "Flash sale", "body": "starts now", "groups": 16, "valid_for": "5m",
		"schema": map[string]any{"type": "object", "required": []string{"product", "discount"},
			"properties": map[string]any{"product": map[string]string{"type": "string"}, "discount": map[string]string{"type": "integer"}}},
	}, nil))
	const users = 3000
	b.registerAnywhere("flash-sale", 1_000_000, users)

	post := func(key string, data map[string]any) (int, api.Event) {
		var ev api.Event
		code := b.callWith(http.MethodPost, "/v1/events", map[string]any{"topic": "flash-sale", "data": data},
			http.Header{"Idempotency-Key": {key}}, &ev)
		return code, ev
	}
	code, ev := post("sale-1", map[string]any{"product": "shoes", "discount": 30})
	require.Equal(t, http.StatusAccepted, code)
	code, again := post("sale-1", map[string]any{"product": "shoes", "discount": 30})
	require.Equal(t, http.StatusOK, code, "a retry with the same key is answered with the first event")
	require.Equal(t, ev.ID, again.ID)
	code, _ = post("sale-2", map[string]any{"product": "shoes"})
	require.Equal(t, http.StatusUnprocessableEntity, code, "missing field")

	testenv.WaitUntil(t, time.Minute, "the event's occurrence is done", func() bool {
		var got api.Event
		require.Equal(t, 200, b.call(http.MethodGet, fmt.Sprintf("/v1/events/%d", ev.ID), nil, &got))
		return len(got.Occurrences) == 1 && got.Occurrences[0].State == "done"
	})
	st := b.sink.Stats()
	require.Equal(t, users, st.Users)
	require.Zero(t, st.Duplicates)
	require.Equal(t, map[string]int{`{"discount":30,"product":"shoes"}`: users}, b.sink.Data())
	var got api.Event
	require.Equal(t, 200, b.call(http.MethodGet, fmt.Sprintf("/v1/events/%d", ev.ID), nil, &got))
	require.EqualValues(t, users, got.Occurrences[0].Delivered)
	t.Logf("event to %d subscribers: first delivery %v after the post's instant, last %v", users,
		st.First.Sub(ev.FireAt), st.Last.Sub(ev.FireAt))
}

// A timetable imported as CSV fires through the pipeline at each location's
// row for today, and a one-off instant fires at each of its offsets.
func TestTimetableAndOnceFireThroughThePipeline(t *testing.T) {
	b := setup(t)
	b.startCoordinator("c1")
	b.startWorker("w1")

	require.Equal(t, 201, b.call(http.MethodPut, "/v1/reminders/maghrib", map[string]any{
		"kind": "timetable", "title": "Maghrib", "groups": 8, "valid_for": "5m"}, nil))
	fireAt := nextSecond(3 * time.Second)
	var csv strings.Builder
	csv.WriteString("location,zone,date,name,local_time\n")
	for _, p := range fourZones {
		loc, err := time.LoadLocation(p.zone)
		require.NoError(t, err)
		local := fireAt.In(loc)
		fmt.Fprintf(&csv, "%s,%s,%s,maghrib,%s\n", p.name, p.zone, local.Format(time.DateOnly), local.Format("15:04:05"))
		// Tomorrow's row, which must not fire now.
		fmt.Fprintf(&csv, "%s,%s,%s,maghrib,%s\n", p.name, p.zone, local.AddDate(0, 0, 1).Format(time.DateOnly), local.Format("15:04:05"))
	}
	var imported struct{ Rows int }
	require.Equal(t, 200, b.callRaw(http.MethodPost, "/v1/timetable", "text/csv", csv.String(), &imported))
	require.Equal(t, 2*len(fourZones), imported.Rows)
	per := b.register("maghrib", 2_000_000, 2000, fourZones)

	launchAt := nextSecond(5 * time.Second)
	require.Equal(t, 201, b.call(http.MethodPut, "/v1/reminders/launch", map[string]any{
		"kind": "once", "title": "Launch", "groups": 4, "valid_for": "5m", "at": launchAt, "offsets": []string{"2s", "0s"}}, nil))
	b.registerAnywhere("launch", 3_000_000, 500)

	occ := b.waitDone("maghrib", len(fourZones), time.Minute)
	for _, o := range at(occ, fireAt) {
		require.EqualValues(t, per[o.Location], o.Delivered, o.Location)
	}
	b.waitDone("launch", 2, time.Minute)
	for i := range 500 {
		require.Equal(t, 2, b.sink.Count(strconv.Itoa(3_000_000+i)), "one delivery per offset")
	}
	for i := range 2000 {
		require.Equal(t, 1, b.sink.Count(strconv.Itoa(2_000_000+i)))
	}
}

// Fault: no coordinator runs while two reminders' instant passes (the only
// coordinator is stopped before it and a new one started 6 seconds after).
// Checked: the reminder whose grace window (1 minute) is still open fires
// late, every user once, and its occurrence says it was late and by how
// much; the one whose grace (2 seconds) has passed is recorded as missed and
// sends nothing.
func TestCoordinatorOutageCatchesUpOrRecordsMissed(t *testing.T) {
	b := setup(t)
	stop := b.startCoordinator("c1")
	b.startWorker("w1")
	fireAt := nextSecond(3 * time.Second)
	one := []place{{"riyadh", "Asia/Riyadh"}}
	for key, grace := range map[string]string{"patient": "1m", "strict": "2s"} {
		require.Equal(t, 201, b.call(http.MethodPut, "/v1/reminders/"+key, map[string]any{
			"title": key, "groups": 4, "valid_for": "5m", "grace": grace,
			"times": []api.ReminderTime{{Location: "riyadh", Zone: "Asia/Riyadh", LocalTime: fireAt.In(mustZone(t, "Asia/Riyadh")).Format("15:04:05")}},
		}, nil))
	}
	b.register("patient", 4_000_000, 300, one)
	b.register("strict", 5_000_000, 300, one)
	testenv.WaitUntil(t, 10*time.Second, "both occurrences planned", func() bool {
		return len(at(b.occurrences("patient"), fireAt)) == 1 && len(at(b.occurrences("strict"), fireAt)) == 1
	})
	stop()
	time.Sleep(time.Until(fireAt.Add(6 * time.Second))) // the outage itself: nothing runs to wait on
	b.apiURL = ""                                       // the API moves to the new coordinator
	b.startCoordinator("c2")

	occ := at(b.waitDone("patient", 1, time.Minute), fireAt)
	require.Len(t, occ, 1)
	require.True(t, occ[0].Late)
	require.GreaterOrEqual(t, *occ[0].LateMs, int64(5000))
	require.EqualValues(t, 300, occ[0].Delivered)
	testenv.WaitUntil(t, 20*time.Second, "strict recorded as missed", func() bool {
		o := at(b.occurrences("strict"), fireAt)
		return len(o) == 1 && o[0].State == "missed"
	})
	for i := range 300 {
		require.Equal(t, 1, b.sink.Count(strconv.Itoa(4_000_000+i)))
		require.Zero(t, b.sink.Count(strconv.Itoa(5_000_000+i)))
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}
