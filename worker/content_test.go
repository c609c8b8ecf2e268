package worker_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/message"
)

// Every batch carries the task's content as it is: language,
// translations, tags and event data, for the channel to compose with.
func TestBatchesCarryContent(t *testing.T) {
	f := setup(t, 120)
	var rec recorder
	w := f.worker(t, "w1", &rec)
	p := f.payload(1)
	p.Lang, p.Tags, p.Data = "pt", []string{"mask"}, json.RawMessage(`{"cup":"a"}`)
	p.Translations = map[string]message.Text{"ar": {Title: "اشرب", Body: "ماء"}}
	require.NoError(t, w.Handle(context.Background(), p))
	batches, _ := rec.sent()
	require.NotEmpty(t, batches)
	for _, b := range batches {
		require.Equal(t, "pt", b.Lang)
		require.Equal(t, []string{"mask"}, b.Tags)
		require.JSONEq(t, `{"cup":"a"}`, string(b.Data))
		require.Equal(t, p.Translations, b.Translations)
	}
}
