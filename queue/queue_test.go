package queue

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/message"
)

func TestPayloadRoundTripAndTaskID(t *testing.T) {
	p := Payload{
		Message:    message.Message{Occurrence: 12, ReminderID: 3, Group: 7, FireAt: time.Date(2026, 3, 8, 7, 30, 0, 0, time.UTC), ExpiresAt: time.Date(2026, 3, 8, 7, 45, 0, 0, time.UTC), Reminder: "fajr", Title: "Fajr", Body: "in 10 minutes", Location: "jakarta", Zone: "Asia/Jakarta"},
		LocationID: 4,
		Layout:     16,
		Attempt:    2,
	}
	require.Equal(t, "o12:g7:a2", p.TaskID())
	one := Task{Parts: []Payload{p}}
	require.Equal(t, "o12:g7:a2", one.ID(), "a task of one group has the group's ID")
	b, err := Encode(one)
	require.NoError(t, err)
	got, err := Decode(TaskType, b)
	require.NoError(t, err)
	require.Equal(t, one, got)

	q := p
	q.Occurrence, q.Group, q.Location, q.Zone, q.LocationID = 13, 0, "bandung", "Asia/Makassar", 5
	q.ExpiresAt = time.Time{}
	shared := Task{Parts: []Payload{p, q, q}}
	require.Equal(t, "o12:g7:a2+2", shared.ID(), "the first group's ID and how many more")
	b, err = Encode(shared)
	require.NoError(t, err)
	got, err = Decode(TaskType, b)
	require.NoError(t, err)
	require.Equal(t, shared, got)

	_, err = Encode(Task{})
	require.Error(t, err, "a task of no group")
	for _, bad := range []string{`{"p":[{"o":1}]}`, `{"m":{"t":"T"},"p":[]}`, `{"m":{"t":"T"},"p":[{"o":1},{"g":1}]}`, `not json`} {
		_, err = Decode(TaskType, []byte(bad))
		require.Error(t, err, bad)
	}
	_, err = Decode("chime:other", b)
	require.ErrorContains(t, err, "unknown task type")

	// The form before shared messages, as workers still find it queued.
	for _, task := range []Task{one, shared} {
		b, err = json.Marshal(task)
		require.NoError(t, err)
		got, err = Decode(LegacyTaskType, b)
		require.NoError(t, err)
		require.Equal(t, task, got)
	}
	_, err = Decode(LegacyTaskType, []byte(`{"g":1}`))
	require.Error(t, err, "a payload without an occurrence")
	_, err = Decode(LegacyTaskType, []byte(`{"p":[{"o":1},{"g":1}]}`))
	require.Error(t, err, "a part without an occurrence")
	_, err = Decode(LegacyTaskType, []byte(`not json`))
	require.Error(t, err)
}

// A shared task carries its parts' common message once; a part whose
// message differs from the first part's in more than the occurrence's own
// fields (another reminder, an edit between two claims) carries its own,
// and each part decodes to its own message either way.
func TestSharedTaskCarriesTheMessageOnce(t *testing.T) {
	msg := message.Message{ReminderID: 3, Reminder: "fajr", App: 9, Title: "Fajr", Body: strings.Repeat("b", 2000),
		Tags: []string{"mask"}, Lang: "en", Translations: map[string]message.Text{"ar": {Title: "الفجر", Body: "الآن"}},
		Data: json.RawMessage(`{"x":1}`), Policy: &message.Policy{Category: "prayer", CapMax: 3, CapWindow: time.Hour},
		FireAt: time.Date(2026, 3, 8, 4, 30, 0, 0, time.UTC)}
	var parts []Payload
	for i := range 64 {
		m := msg
		m.Occurrence, m.Group, m.Location, m.Zone = int64(100+i), i%3, fmt.Sprintf("city-%d", i), "Asia/Jakarta"
		m.ExpiresAt = m.FireAt.Add(time.Duration(i) * time.Minute)
		parts = append(parts, Payload{Message: m, LocationID: int64(i + 1), Layout: 1, Attempt: 1})
	}
	other := parts[40].Message
	other.ReminderID, other.Reminder, other.Body = 4, "dhuhr", "another reminder"
	parts[40].Message = other
	task := Task{Parts: parts}
	b, err := Encode(task)
	require.NoError(t, err)
	// The 2,000-byte body twice (the task's and part 40's), not 64 times.
	require.Less(t, len(b), 3*2000+64*200, "encoded size %d", len(b))
	require.Equal(t, 1, strings.Count(string(b), strings.Repeat("b", 2000)))
	require.Contains(t, string(b), "another reminder")
	got, err := Decode(TaskType, b)
	require.NoError(t, err)
	require.Equal(t, task, got)
}

// A task queued by a version whose Payload listed the message's fields
// itself (before it embedded message.Message), in that version's JSON form,
// must decode to the same message, and encode back to the same JSON: tasks
// waiting in Redis during an upgrade are delivered unchanged.
func TestPayloadDecodesTheFormBeforeMessage(t *testing.T) {
	old := `{"o":12,"r":3,"l":4,"g":7,"a":2,"f":"2026-03-08T07:30:00Z","e":"2026-03-08T07:45:00Z",` +
		`"k":"fajr","t":"Fajr","b":"in 10 minutes","ln":"jakarta","z":"Asia/Jakarta",` +
		`"d":{"product":"shoes"},"tg":["mask"],"la":"en","tr":{"ar":{"title":"الفجر","body":"الآن"}},` +
		`"app":9,"wo":true,"nc":true}`
	task, err := Decode(LegacyTaskType, []byte(old))
	require.NoError(t, err)
	require.Len(t, task.Parts, 1, "a task of one group")
	got := task.Parts[0]
	want := Payload{
		Message: message.Message{
			Occurrence: 12, Group: 7, ReminderID: 3, Reminder: "fajr", App: 9,
			Title: "Fajr", Body: "in 10 minutes", Location: "jakarta", Zone: "Asia/Jakarta",
			FireAt: time.Date(2026, 3, 8, 7, 30, 0, 0, time.UTC), ExpiresAt: time.Date(2026, 3, 8, 7, 45, 0, 0, time.UTC),
			Data: json.RawMessage(`{"product":"shoes"}`), Tags: []string{"mask"},
			Lang: "en", Translations: map[string]message.Text{"ar": {Title: "الفجر", Body: "الآن"}},
			DeliverWhenOnline: true, NotifyContacts: true,
		},
		LocationID: 4, Attempt: 2,
	}
	require.Equal(t, want, got)
	b, err := json.Marshal(got)
	require.NoError(t, err)
	require.JSONEq(t, old, string(b))
}

func TestPack(t *testing.T) {
	part := func(o int64, g int) Payload {
		return Payload{Message: message.Message{Occurrence: o, Group: g, Title: "T"}, Attempt: 1}
	}
	ids := func(ts []Task) [][]string {
		var out [][]string
		for _, tk := range ts {
			var ids []string
			for _, p := range tk.Parts {
				ids = append(ids, p.TaskID())
			}
			out = append(out, ids)
		}
		return out
	}
	tests := []struct {
		name  string
		sizes []int
		users int
		parts int
		want  [][]string
	}{
		{"small groups share up to the user bound", []int{150, 150, 100, 200, 200}, 400, 64,
			[][]string{{"o1:g0:a1", "o2:g0:a1", "o3:g0:a1"}, {"o4:g0:a1", "o5:g0:a1"}}},
		{"a full group goes alone", []int{100, 400, 100}, 400, 64,
			[][]string{{"o1:g0:a1"}, {"o2:g0:a1"}, {"o3:g0:a1"}}},
		{"a group over the bound goes alone", []int{900, 10}, 400, 64,
			[][]string{{"o1:g0:a1"}, {"o2:g0:a1"}}},
		{"the part bound", []int{1, 1, 1, 1, 1}, 400, 2,
			[][]string{{"o1:g0:a1", "o2:g0:a1"}, {"o3:g0:a1", "o4:g0:a1"}, {"o5:g0:a1"}}},
		{"nothing", nil, 400, 64, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ps []Payload
			for i := range tc.sizes {
				ps = append(ps, part(int64(i+1), 0))
			}
			ts, err := Pack(ps, tc.sizes, tc.users, tc.parts)
			require.NoError(t, err)
			require.Equal(t, tc.want, ids(ts))
			for _, tk := range ts {
				requireEncodes(t, tk)
			}
		})
	}

	// 5,000 cities of 200 users due at once: two a task.
	var ps []Payload
	var sizes []int
	for i := range 5000 {
		ps = append(ps, part(int64(i+1), 0))
		sizes = append(sizes, 200)
	}
	ts, err := Pack(ps, sizes, 400, DefaultTaskParts)
	require.NoError(t, err)
	require.Len(t, ts, 2500)

	// The byte bound: groups of reminders with long texts of their own
	// share less; groups of one reminder carry its text once, and share.
	var bigs []Payload
	for i := range 4 {
		big := part(int64(i+1), 0)
		big.ReminderID, big.Body = int64(i+1), strings.Repeat("x", MaxTaskBytes/3)
		bigs = append(bigs, big)
	}
	ts, err = Pack(bigs, []int{1, 1, 1, 1}, 400, 64)
	require.NoError(t, err)
	require.Len(t, ts, 2)
	for i := range bigs {
		bigs[i].ReminderID = 1
	}
	ts, err = Pack(bigs, []int{1, 1, 1, 1}, 400, 64)
	require.NoError(t, err)
	require.Len(t, ts, 1)
	for _, tk := range ts {
		b := requireEncodes(t, tk)
		require.LessOrEqual(t, len(b), MaxTaskBytes, "the bound holds for the encoded task")
	}
}

// requireEncodes checks that the form Pack built for tk decodes to its
// groups, as the form Encode builds for the same groups does, and returns
// it.
func requireEncodes(t *testing.T, tk Task) []byte {
	t.Helper()
	packed, err := Encode(tk)
	require.NoError(t, err)
	require.True(t, json.Valid(packed), "%s", packed)
	got, err := Decode(TaskType, packed)
	require.NoError(t, err)
	require.Equal(t, tk.Parts, got.Parts)
	fresh, err := Encode(Task{Parts: tk.Parts})
	require.NoError(t, err)
	require.JSONEq(t, string(fresh), string(packed))
	return packed
}
