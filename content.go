package chime

import (
	"github.com/redis/go-redis/v9"

	"github.com/chime-dev/chime/content"
)

// NewContent assembles what push channels compose messages with: the
// composer, with the configured tag processors, and the merger of
// identical reminders (CHIME_MERGE_WINDOW).
func NewContent(cfg Config, rdb redis.UniversalClient) (*content.Composer, *content.Merger) {
	return content.NewComposer(content.Config{Processors: cfg.Processors()}),
		content.NewMerger(content.MergerConfig{Prefix: cfg.Prefix, Window: cfg.MergeWindow}, rdb)
}
