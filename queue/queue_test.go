package queue

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPayloadRoundTripAndTaskID(t *testing.T) {
	p := Payload{Occurrence: 12, Reminder: 3, Location: 4, Group: 7, Attempt: 2,
		FireAt: time.Date(2026, 3, 8, 7, 30, 0, 0, time.UTC), ExpiresAt: time.Date(2026, 3, 8, 7, 45, 0, 0, time.UTC),
		Key: "fajr", Title: "Fajr", Body: "in 10 minutes", LocationName: "jakarta", Zone: "Asia/Jakarta"}
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
