package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/store"
)

// Group tasks carry the reminder's language, translations and tags, so
// workers compose messages without reading the reminder.
func TestGroupTasksCarryContent(t *testing.T) {
	fireAt := time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC)
	b := setup(t, fireAt)
	rid, _ := b.reminder(t, "09:00", "Asia/Jakarta", 20, fireAt.Add(-time.Hour))
	require.NoError(t, b.env.DB.Model(&store.Reminder{ID: rid}).Updates(store.Reminder{
		Lang: "id", Tags: store.Tags{"mask", "sale"},
		Translations: store.Texts{"ar": {Title: "تخفيضات", Body: "الآن {{.LocalTime}}"}},
	}).Error)
	ctx := context.Background()
	require.NoError(t, b.s.Plan(ctx))
	require.NoError(t, b.s.Fire(ctx, b.occurrences(t)[0]))

	tasks, err := b.insp.ListPendingTasks(b.env.Queue)
	require.NoError(t, err)
	require.NotEmpty(t, tasks)
	for _, task := range tasks {
		tk, err := queue.Decode(task.Type, task.Payload)
		require.NoError(t, err)
		for _, p := range tk.Parts {
			require.Equal(t, "id", p.Lang)
			require.Equal(t, []string{"mask", "sale"}, p.Tags)
			require.Equal(t, map[string]message.Text{"ar": {Title: "تخفيضات", Body: "الآن {{.LocalTime}}"}}, p.Translations)
		}
	}
}
