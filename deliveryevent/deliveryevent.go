// Package deliveryevent streams what happened to an app's users back to the
// app: delivered, failed, expired, skipped_preference, quiet, capped and
// opened events, posted in signed batches to the endpoint the app
// registered (PUT /v1/delivery-events/endpoint).
//
// Two halves, joined by one Redis stream per app (keyspace.DeliveryEvents):
//
//   - A Recorder writes one stream entry per chunk a worker sends (and per
//     batch of opens): the chunk's users by outcome. It is one script call
//     with a short deadline (RecorderConfig.Timeout), after the send; when
//     it fails the events of that chunk are lost, logged and counted, and
//     delivery goes on. Streams are bounded (RecorderConfig.MaxLen entries;
//     the oldest are trimmed, counted as trimmed) and expire MaxAge after
//     their last entry.
//   - A Dispatcher (every worker runs one) reads the streams as one consumer
//     group, posts each app's entries to its endpoint, at most one POST per
//     entry (entries merge into one POST up to Config.BatchEvents events),
//     signed with Standard Webhooks headers, and acknowledges an entry only
//     after a 2xx. A failed POST is retried with exponential backoff until
//     the entry is older than MaxAge (then it is dropped and counted as
//     given_up). Entries a dead dispatcher had taken are claimed by another
//     after Config.ClaimIdle (XAUTOCLAIM).
//
// Delivery is therefore at least once: a chunk a worker sends again, a POST
// whose answer was lost, a claim after a pause, all post events again. Every
// event carries an ID that depends only on the app, occurrence, user and
// type (EventID), never on the attempt, so the app drops the repeats by ID.
//
// Each app has its own stream and its own loop in each dispatcher: an
// endpoint that fails or hangs delays only its own app's events; the POSTs
// in flight over all apps are bounded (Config.Parallel).
package deliveryevent

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/keyspace"
	"github.com/chime-dev/chime/metrics"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/store"
)

// Event types.
const (
	Delivered         = "delivered"
	Failed            = "failed"
	Expired           = "expired"
	SkippedPreference = "skipped_preference"
	Quiet             = "quiet"
	Capped            = "capped"
	Opened            = "opened"
)

// Types are the event types, in the order a chunk's events are posted.
var Types = []string{Delivered, Failed, Expired, SkippedPreference, Quiet, Capped, Opened}

// Chunk is what happened to one chunk of one group of an occurrence (or to
// one batch of opens): its users by outcome type.
type Chunk struct {
	App        int64  `json:"app"`
	Reminder   string `json:"reminder,omitempty"`
	Occurrence int64  `json:"occurrence"`
	Location   string `json:"location,omitempty"`
	// Group is the group the chunk belongs to; nil for opens.
	Group *int `json:"group,omitempty"`
	// Attempt is the group's attempt; it does not change the events' IDs.
	Attempt int `json:"attempt,omitempty"`
	// At is when it happened. Defaults to the recorder's clock.
	At time.Time `json:"at"`
	// Outcomes are the users by type (Types); users of an unknown type are
	// not recorded.
	Outcomes map[string][]string `json:"outcomes"`
}

// Size is the number of events of the chunk.
func (c *Chunk) Size() int {
	n := 0
	for _, t := range Types {
		n += len(c.Outcomes[t])
	}
	return n
}

// Event is one delivery event, as posted.
type Event struct {
	// ID is the same for every copy of the event (EventID).
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	User       string    `json:"user"`
	Reminder   string    `json:"reminder,omitempty"`
	Occurrence int64     `json:"occurrence"`
	Location   string    `json:"location,omitempty"`
	Group      *int      `json:"group,omitempty"`
	Timestamp  time.Time `json:"timestamp"`
}

// EventID is the ID of the event of type typ for user of the app's
// occurrence: "evt_" and 32 hex digits of SHA-256 over the four. It does
// not depend on the attempt, the chunk or the time, so every copy of one
// event carries the same ID.
func EventID(app, occurrence int64, user, typ string) string {
	h := sha256.New()
	h.Write(strconv.AppendInt(nil, app, 10))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, occurrence, 10))
	h.Write([]byte{0})
	h.Write([]byte(typ))
	h.Write([]byte{0})
	h.Write([]byte(user))
	return "evt_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Events returns the chunk's events, by type in the order of Types.
func (c *Chunk) Events() []Event {
	out := make([]Event, 0, c.Size())
	for _, t := range Types {
		for _, u := range c.Outcomes[t] {
			out = append(out, Event{ID: EventID(c.App, c.Occurrence, u, t), Type: t, User: u, Reminder: c.Reminder,
				Occurrence: c.Occurrence, Location: c.Location, Group: c.Group, Timestamp: c.At.UTC()})
		}
	}
	return out
}

// Defaults of the RecorderConfig and Config.
const (
	// DefaultMaxLen bounds an app's stream: at the default chunk size (100
	// users) about a million events waiting, some 40 MB of Redis at most.
	DefaultMaxLen = 10000
	// DefaultMaxAge is how long an event is kept trying before it is given
	// up, and how long a stream outlives its last entry.
	DefaultMaxAge = 24 * time.Hour
	// DefaultRecordTimeout bounds recording one chunk.
	DefaultRecordTimeout = time.Second
	// DefaultRefresh is how often the apps' endpoints are read again.
	DefaultRefresh = 10 * time.Second
)

// RecorderConfig configures a Recorder.
type RecorderConfig struct {
	// Prefix starts every key. Defaults to keyspace.DefaultPrefix.
	Prefix string
	// MaxLen is the most entries an app's stream holds; a new entry trims
	// the oldest (counted and logged as trimmed). Defaults to DefaultMaxLen
	// (10000).
	MaxLen int64
	// MaxAge is how long a stream is kept after its last entry. Defaults to
	// DefaultMaxAge (24h).
	MaxAge time.Duration
	// Timeout bounds recording one chunk. Defaults to DefaultRecordTimeout
	// (1s).
	Timeout time.Duration
	// Refresh is how often the recorder reads again which apps have an
	// endpoint: the chunks of the others are not recorded. An app's first
	// events after it registers may go unrecorded for that long. Defaults
	// to DefaultRefresh (10s).
	Refresh time.Duration
	// Clock stamps chunks without a time. Defaults to the real clock.
	Clock clock.Clock
}

// Recorder writes chunks to the apps' streams. A nil *Recorder records
// nothing.
type Recorder struct {
	cfg  RecorderConfig
	rdb  redis.UniversalClient
	apps *endpoints
	log  *slog.Logger
}

// NewRecorder returns a recorder; db tells which apps have an endpoint.
func NewRecorder(cfg RecorderConfig, rdb redis.UniversalClient, db *gorm.DB, log *slog.Logger) *Recorder {
	cfg.Prefix = cmp.Or(cfg.Prefix, keyspace.DefaultPrefix)
	cfg.MaxLen = cmp.Or(cfg.MaxLen, DefaultMaxLen)
	cfg.MaxAge = cmp.Or(cfg.MaxAge, DefaultMaxAge)
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultRecordTimeout)
	cfg.Refresh = cmp.Or(cfg.Refresh, DefaultRefresh)
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	return &Recorder{cfg: cfg, rdb: rdb, apps: newEndpoints(db, cfg.Refresh, log), log: log}
}

// add appends an entry and trims the stream to its bound in one step, so
// that what the bound drops is counted; the stream lives MaxAge past its
// last entry. KEYS stream; ARGV chunk JSON, max length, TTL ms. Returns the
// number of entries trimmed.
var add = redis.NewScript(`
redis.call('XADD', KEYS[1], '*', 'c', ARGV[1])
local trimmed = redis.call('XTRIM', KEYS[1], 'MAXLEN', tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return trimmed`)

// Chunk records a chunk's events. It never fails the caller: an error is
// logged and counted, and returns within the recorder's Timeout.
func (r *Recorder) Chunk(ctx context.Context, c Chunk) {
	if r == nil {
		return
	}
	if err := r.Record(ctx, c); err != nil {
		r.log.Warn("delivery events not recorded", "app", c.App, "occurrence", c.Occurrence, "events", c.Size(), "err", err)
		metrics.DeliveryEvents(metrics.EventsRecordFailed, c.Size())
	}
}

// Wants reports whether app's events are recorded (the app has an
// endpoint, as last read), so that a caller builds a chunk's events only
// for such apps.
func (r *Recorder) Wants(app int64) bool {
	return r != nil && r.apps.has(app)
}

// Record writes c to its app's stream, unless the app has no endpoint or c
// has no events.
func (r *Recorder) Record(ctx context.Context, c Chunk) error {
	for t := range c.Outcomes {
		if !slices.Contains(Types, t) {
			r.log.Warn("delivery events of an unknown type not recorded", "type", t, "users", len(c.Outcomes[t]))
			delete(c.Outcomes, t)
		}
	}
	n := c.Size()
	if n == 0 || !r.apps.has(c.App) {
		return nil
	}
	if c.At.IsZero() {
		c.At = r.cfg.Clock.Now()
	}
	body, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode chunk: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	trimmed, err := add.Run(ctx, r.rdb, []string{keyspace.DeliveryEvents(r.cfg.Prefix, c.App)},
		body, r.cfg.MaxLen, r.cfg.MaxAge.Milliseconds()).Int64()
	if err != nil {
		return fmt.Errorf("record delivery events: %w", err)
	}
	metrics.DeliveryEvents(metrics.EventsRecorded, n)
	if trimmed > 0 {
		// The entries' sizes are not known without reading them.
		r.log.Warn("delivery event stream full: oldest entries dropped unsent", "app", c.App, "entries", trimmed, "max_len", r.cfg.MaxLen)
		metrics.DeliveryEvents(metrics.EventsTrimmed, int(trimmed))
	}
	return nil
}

// endpoints caches the apps' endpoints, read again every refresh in the
// background: the recorder's path never waits for MySQL.
type endpoints struct {
	db      *gorm.DB
	refresh time.Duration
	log     *slog.Logger

	mu      sync.Mutex
	byApp   map[int64]store.DeliveryEventEndpoint
	at      time.Time // of the last load that succeeded
	loading bool
}

func newEndpoints(db *gorm.DB, refresh time.Duration, log *slog.Logger) *endpoints {
	return &endpoints{db: db, refresh: refresh, log: log}
}

// has tells whether the app has an endpoint. Before the first load has
// succeeded every app is taken to have one: a chunk recorded for nothing
// costs a bounded stream that expires, an event not recorded is lost.
func (e *endpoints) has(app int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if time.Since(e.at) > e.refresh && !e.loading {
		e.loading = true
		go func() { _, _ = e.load(context.Background()) }() // load logs its failure
	}
	if e.byApp == nil {
		return true
	}
	_, ok := e.byApp[app]
	return ok
}

// load reads the endpoints now.
func (e *endpoints) load(ctx context.Context) (map[int64]store.DeliveryEventEndpoint, error) {
	list, err := store.DeliveryEventEndpoints(ctx, e.db)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.loading = false
	if err != nil {
		e.log.Warn("read delivery event endpoints", "err", err)
		return e.byApp, err
	}
	m := make(map[int64]store.DeliveryEventEndpoint, len(list))
	for _, x := range list {
		m[x.AppID] = x
	}
	e.byApp, e.at = m, time.Now()
	return m, nil
}

// Outcomes sorts a sent chunk's users by the send's result: failed and
// expired as the result names them (all of them failed when it names none
// but counts them all, the failed all expired when it counts them so), the
// others delivered.
func Outcomes(users []string, res sender.Result) map[string][]string {
	failed := res.FailedUsers
	if len(failed) == 0 && res.Failed >= len(users) {
		failed = users
	}
	expired := res.ExpiredUsers
	if len(expired) == 0 && res.Expired > 0 && res.Expired >= res.Failed {
		expired = failed
	}
	if len(failed) == 0 && len(expired) == 0 {
		// Everyone delivered, the common case: the users as they are,
		// clipped so that an append to the list copies it.
		if len(users) == 0 {
			return map[string][]string{}
		}
		return map[string][]string{Delivered: slices.Clip(users)}
	}
	bad := make(map[string]string, len(failed))
	for _, u := range failed {
		bad[u] = Failed
	}
	for _, u := range expired {
		bad[u] = Expired
	}
	out := map[string][]string{}
	for _, u := range users {
		t := cmp.Or(bad[u], Delivered)
		out[t] = append(out[t], u)
	}
	return out
}
