package queue

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/message"
)

func TestPayloadRoundTripAndTaskID(t *testing.T) {
	p := Payload{
		Message:    message.Message{Occurrence: 12, ReminderID: 3, Group: 7, FireAt: time.Date(2026, 3, 8, 7, 30, 0, 0, time.UTC), ExpiresAt: time.Date(2026, 3, 8, 7, 45, 0, 0, time.UTC), Reminder: "fajr", Title: "Fajr", Body: "in 10 minutes", Location: "jakarta", Zone: "Asia/Jakarta"},
		LocationID: 4,
		Attempt:    2,
	}
	require.Equal(t, "o12:g7:a2", p.TaskID())
	b, err := json.Marshal(p)
	require.NoError(t, err)
	got, err := Decode(b)
	require.NoError(t, err)
	require.Equal(t, p, got)

	_, err = Decode([]byte(`{"g":1}`))
	require.Error(t, err, "a payload without an occurrence")
	_, err = Decode([]byte(`not json`))
	require.Error(t, err)
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
	got, err := Decode([]byte(old))
	require.NoError(t, err)
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
