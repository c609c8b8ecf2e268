package deliveryevent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/keyspace"
	"github.com/chime-dev/chime/store"
)

// DefaultOpenRetention is how long an occurrence's openers are remembered
// after its last open: an open reported later than that is counted again.
const DefaultOpenRetention = 7 * 24 * time.Hour

// MaxOpens is the most users one call to Opens.Record takes (and POST
// /v1/occurrences/{id}/opens).
const MaxOpens = 1000

// OpensConfig configures Opens.
type OpensConfig struct {
	// Prefix starts every key. Defaults to keyspace.DefaultPrefix.
	Prefix string
	// Retention is how long an occurrence's openers are kept after its last
	// open. Defaults to DefaultOpenRetention (168h).
	Retention time.Duration
}

// Opens counts the users who open an occurrence's message, each once,
// whichever way the open is reported (a gateway read receipt, an inbox
// read, the app's POST /v1/occurrences/{id}/opens), and records an opened
// delivery event for each first open.
//
// The openers of an occurrence are a Redis set (keyspace.Opens) that lives
// Retention past its last open, some 60 bytes an opener; the count is
// occurrences.opens in MySQL.
type Opens struct {
	cfg    OpensConfig
	rdb    redis.UniversalClient
	db     *gorm.DB
	events *Recorder
	log    *slog.Logger
}

// NewOpens returns the open counter; events, if not nil, gets the opened
// events.
func NewOpens(cfg OpensConfig, rdb redis.UniversalClient, db *gorm.DB, events *Recorder, log *slog.Logger) *Opens {
	cfg.Prefix = cmp.Or(cfg.Prefix, keyspace.DefaultPrefix)
	cfg.Retention = cmp.Or(cfg.Retention, DefaultOpenRetention)
	return &Opens{cfg: cfg, rdb: rdb, db: db, events: events, log: log}
}

// opened adds users to an occurrence's openers and returns those who were
// not among them. KEYS openers; ARGV TTL ms, then the users.
var opened = redis.NewScript(`
local new = {}
for i = 2, #ARGV do
  if redis.call('SADD', KEYS[1], ARGV[i]) == 1 then new[#new + 1] = ARGV[i] end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return new`)

// Record counts the opens of the app's occurrence by users (at most
// MaxOpens) and returns how many were first opens.
func (o *Opens) Record(ctx context.Context, app int64, occ store.OccurrenceRow, users []string, now time.Time) (int, error) {
	if len(users) == 0 {
		return 0, nil
	}
	if len(users) > MaxOpens {
		return 0, fmt.Errorf("record opens: %d users, at most %d", len(users), MaxOpens)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	args := make([]any, 0, 1+len(users))
	args = append(args, o.cfg.Retention.Milliseconds())
	for _, u := range users {
		args = append(args, u)
	}
	first, err := opened.Run(ctx, o.rdb, []string{keyspace.Opens(o.cfg.Prefix, occ.ID)}, args...).StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("record opens: %w", err)
	}
	if len(first) == 0 {
		return 0, nil
	}
	if err := store.AddOpens(ctx, o.db, app, occ.ID, int64(len(first))); err != nil {
		// The openers are remembered: a repeat does not count them later.
		return 0, err
	}
	o.events.Chunk(ctx, Chunk{App: app, Reminder: occ.Reminder, Occurrence: occ.ID, Location: occ.Location, At: now,
		Outcomes: map[string][]string{Opened: first}})
	return len(first), nil
}

// Read counts the opens a user's read receipts report: messages are inbox
// message IDs, each naming its occurrence (occurrenceOf, 0 for none). It
// logs what fails rather than fail the receipts.
func (o *Opens) Read(ctx context.Context, app int64, user string, messages []string, occurrenceOf func(string) int64, now time.Time) {
	if o == nil {
		return
	}
	seen := map[int64]bool{}
	for _, m := range messages {
		id := occurrenceOf(m)
		if id == 0 || seen[id] {
			continue
		}
		seen[id] = true
		occ, err := store.FindOccurrence(ctx, o.db, app, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err == nil {
			_, err = o.Record(ctx, app, occ, []string{user}, now)
		}
		if err != nil {
			o.log.Warn("record an open", "app", app, "occurrence", id, "err", err)
		}
	}
}
