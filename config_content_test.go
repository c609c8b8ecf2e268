package chime_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/content"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/sender"
)

func TestConfigContent(t *testing.T) {
	words := filepath.Join(t.TempDir(), "words.txt")
	require.NoError(t, os.WriteFile(words, []byte("# sensitive\npenipuan\n"), 0o600))
	base := []string{"REDIS_URL=redis://127.0.0.1:1", "MYSQL_DSN=sqlite::memory:"}
	tests := []struct {
		name   string
		env    []string
		window time.Duration
		err    string
	}{
		{name: "defaults", window: 10 * time.Minute},
		{name: "merging off", env: []string{"CHIME_MERGE_WINDOW=0"}},
		{name: "everything", window: 90 * time.Second, env: []string{"CHIME_MERGE_WINDOW=90s", "CHIME_MASK_WORDS=judi, scam",
			"CHIME_MASK_WORDS_FILE=" + words, `CHIME_PLACEHOLDERS={"brand":"Toko Murah"}`}},
		{name: "negative window", env: []string{"CHIME_MERGE_WINDOW=-1s"}, err: "CHIME_MERGE_WINDOW"},
		{name: "placeholders not JSON", env: []string{"CHIME_PLACEHOLDERS=brand=Toko"}, err: "CHIME_PLACEHOLDERS"},
		{name: "placeholder named like a keyword", env: []string{`CHIME_PLACEHOLDERS={"end":"x"}`}, err: `placeholder "end"`},
		{name: "word file missing", env: []string{"CHIME_MASK_WORDS_FILE=" + words + ".gone"}, err: "mask words"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := chime.LoadConfig(append(base, tt.env...))
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.window, cfg.MergeWindow)
			require.Equal(t, []string{content.TagPlaceholders, content.TagMask}, cfg.Processors().Tags())
		})
	}

	// The processors are the configured ones: a message of a reminder tagged
	// mask and placeholders comes out filled and masked.
	cfg, err := chime.LoadConfig(append(base, tests[2].env...))
	require.NoError(t, err)
	composer, _ := chime.NewContent(cfg, nil)
	batch := &sender.Batch{Message: message.Message{Title: "{{brand}}", Body: "bukan judi, bukan penipuan", Zone: "UTC", Tags: []string{"mask", "placeholders"}}}
	m, err := composer.Compose(&batch.Message, content.Device{})
	require.NoError(t, err)
	require.Equal(t, "Toko Murah", m.Title)
	require.Equal(t, "bukan ****, bukan ********", m.Body)
}
