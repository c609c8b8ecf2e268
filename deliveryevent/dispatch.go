package deliveryevent

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/keyspace"
	"github.com/chime-dev/chime/metrics"
	"github.com/chime-dev/chime/netguard"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/signature"
	"github.com/chime-dev/chime/store"
)

// Group is the consumer group every dispatcher reads the streams in.
const Group = "dispatch"

// PayloadType is the type of every POST's body.
const PayloadType = "delivery_events"

// Payload is the JSON body of a POST, in the Standard Webhooks shape: a
// type, a timestamp and the data.
type Payload struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      struct {
		Events []Event `json:"events"`
	} `json:"data"`
}

// Defaults of the Config.
const (
	DefaultBatchEvents = 1000
	DefaultPostTimeout = 10 * time.Second
	DefaultRetryMin    = time.Second
	DefaultRetryMax    = 5 * time.Minute
	DefaultClaimIdle   = time.Minute
	DefaultPoll        = time.Second
	DefaultParallel    = 16
)

// Config configures a Dispatcher.
type Config struct {
	// Prefix starts every key. Defaults to keyspace.DefaultPrefix.
	Prefix string
	// Consumer names this dispatcher in the consumer group. Defaults to
	// hostname-pid.
	Consumer string
	// BatchEvents is the most events one POST carries when it merges
	// several entries; an entry is never split, so one larger than this
	// (a chunk of more users) is posted alone. Defaults to
	// DefaultBatchEvents (1000).
	BatchEvents int
	// Timeout bounds one POST. Defaults to DefaultPostTimeout (10s).
	Timeout time.Duration
	// RetryMin and RetryMax bound the exponential backoff between failed
	// POSTs of an app. Default to DefaultRetryMin (1s) and DefaultRetryMax
	// (5m).
	RetryMin, RetryMax time.Duration
	// MaxAge is how long an entry is tried before it is given up (dropped,
	// logged and counted as given_up). Defaults to DefaultMaxAge (24h).
	MaxAge time.Duration
	// ClaimIdle is how long an entry another dispatcher took stays
	// unacknowledged before this one claims it: longer than a POST.
	// Defaults to DefaultClaimIdle (1m).
	ClaimIdle time.Duration
	// Poll is how long an app's loop waits when its stream had nothing new.
	// Defaults to DefaultPoll (1s).
	Poll time.Duration
	// Parallel bounds the POSTs in flight over all apps. Defaults to
	// DefaultParallel (16).
	Parallel int
	// Refresh is how often the endpoints are read again. Defaults to
	// DefaultRefresh (10s).
	Refresh time.Duration
	// Guard decides which addresses endpoints may be dialed at: apps
	// register them, so by default (nil) only global unicast addresses.
	Guard *netguard.Policy
	// Keyring opens the endpoints' sealed secrets; an endpoint whose secret
	// does not open is not posted to (logged).
	Keyring *seal.Keyring
	// Clock stamps webhook-timestamp and ages entries. Defaults to the real
	// clock.
	Clock clock.Clock
}

// Dispatcher posts the apps' streams to their endpoints.
type Dispatcher struct {
	cfg    Config
	rdb    redis.UniversalClient
	apps   *endpoints
	client *http.Client
	slots  chan struct{}
	log    *slog.Logger
}

// NewDispatcher returns a dispatcher of the endpoints in db.
func NewDispatcher(cfg Config, rdb redis.UniversalClient, db *gorm.DB, log *slog.Logger) *Dispatcher {
	cfg.Prefix = cmp.Or(cfg.Prefix, keyspace.DefaultPrefix)
	if cfg.Consumer == "" {
		host, _ := os.Hostname()
		cfg.Consumer = host + "-" + strconv.Itoa(os.Getpid())
	}
	cfg.BatchEvents = cmp.Or(cfg.BatchEvents, DefaultBatchEvents)
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultPostTimeout)
	cfg.RetryMin = cmp.Or(cfg.RetryMin, DefaultRetryMin)
	cfg.RetryMax = cmp.Or(cfg.RetryMax, DefaultRetryMax)
	cfg.MaxAge = cmp.Or(cfg.MaxAge, DefaultMaxAge)
	cfg.ClaimIdle = cmp.Or(cfg.ClaimIdle, DefaultClaimIdle)
	cfg.Poll = cmp.Or(cfg.Poll, DefaultPoll)
	cfg.Parallel = cmp.Or(cfg.Parallel, DefaultParallel)
	cfg.Refresh = cmp.Or(cfg.Refresh, DefaultRefresh)
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	tr := cfg.Guard.Transport()
	tr.MaxIdleConnsPerHost = cfg.Parallel
	client := &http.Client{Timeout: cfg.Timeout, Transport: tr,
		// A redirect would take the events to an address the app did not
		// register; the 3xx is a failed POST.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &Dispatcher{cfg: cfg, rdb: rdb, apps: newEndpoints(db, cfg.Refresh, log), client: client,
		slots: make(chan struct{}, cfg.Parallel), log: log}
}

// target is an app's endpoint, ready to post to.
type target struct {
	url    string
	signer *signature.Signer
}

// Run posts events until ctx is cancelled: it reads the endpoints every
// Refresh and keeps one loop per app that has one.
func (d *Dispatcher) Run(ctx context.Context) error {
	type loop struct {
		cancel context.CancelFunc
		target chan target
		seen   store.DeliveryEventEndpoint
	}
	loops := map[int64]*loop{}
	var wg sync.WaitGroup
	defer func() {
		for _, l := range loops {
			l.cancel()
		}
		wg.Wait()
	}()
	d.log.Info("delivery event dispatcher started", "consumer", d.cfg.Consumer)
	for {
		byApp, err := d.apps.load(ctx)
		if err == nil {
			for app, l := range loops {
				if _, ok := byApp[app]; !ok {
					l.cancel()
					delete(loops, app)
				}
			}
			for app, e := range byApp {
				l := loops[app]
				if l != nil && l.seen == e {
					continue
				}
				t, err := d.target(e)
				if err != nil {
					d.log.Warn("delivery event endpoint not usable", "app", app, "err", err)
					continue
				}
				if l == nil {
					lctx, cancel := context.WithCancel(ctx)
					l = &loop{cancel: cancel, target: make(chan target, 1)}
					loops[app] = l
					wg.Add(1)
					go func() {
						defer wg.Done()
						d.app(lctx, app, t, l.target)
					}()
				} else {
					select {
					case <-l.target: // not taken yet: replace it
					default:
					}
					l.target <- t
				}
				l.seen = e
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.cfg.Clock.After(d.cfg.Refresh):
		}
	}
}

func (d *Dispatcher) target(e store.DeliveryEventEndpoint) (target, error) {
	secret, err := d.cfg.Keyring.Open(e.Secret, store.DeliveryEventSecretAAD(e.AppID))
	if err != nil {
		return target{}, fmt.Errorf("open secret: %w", err)
	}
	s, err := signature.ParseSecret(string(secret))
	if err != nil {
		return target{}, err
	}
	return target{url: e.URL, signer: s}, nil
}

// app posts one app's stream until ctx is cancelled, with a new target
// when the endpoint changes.
func (d *Dispatcher) app(ctx context.Context, app int64, t target, updates <-chan target) {
	log := d.log.With("app", app)
	key := keyspace.DeliveryEvents(d.cfg.Prefix, app)
	bo := &backoff.ExponentialBackOff{InitialInterval: d.cfg.RetryMin, MaxInterval: d.cfg.RetryMax,
		Multiplier: 2, RandomizationFactor: 0.2}
	bo.Reset()
	wait := func(dur time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case t = <-updates:
			bo.Reset() // a new endpoint is tried at once
			return true
		case <-d.cfg.Clock.After(dur):
			return true
		}
	}
	for ctx.Err() == nil {
		entries, err := d.next(ctx, key)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("read delivery events", "err", err)
			}
			if !wait(d.cfg.Poll) {
				return
			}
			continue
		}
		if len(entries) == 0 {
			if !wait(d.cfg.Poll) {
				return
			}
			continue
		}
		ok, err := d.deliver(ctx, log, key, t, entries)
		if err != nil && ctx.Err() == nil {
			log.Warn("acknowledge delivery events", "err", err)
		}
		if ok {
			bo.Reset()
			continue
		}
		if !wait(bo.NextBackOff()) {
			return
		}
	}
}

// next returns the entries to post: those this consumer took before and
// has not acknowledged (a failed POST's, to retry), else those of a dead
// consumer idle ClaimIdle, else new ones. It creates the group when the
// stream has none (new, or expired and written again), from the stream's
// start.
func (d *Dispatcher) next(ctx context.Context, key string) ([]redis.XMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	const count = 100
	read := func(id string) ([]redis.XMessage, error) {
		res, err := d.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: Group, Consumer: d.cfg.Consumer,
			Streams: []string{key, id}, Count: count, Block: -1}).Result()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		if err != nil && strings.HasPrefix(err.Error(), "NOGROUP") {
			if err := d.rdb.XGroupCreateMkStream(ctx, key, Group, "0").Err(); err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
				return nil, fmt.Errorf("create group: %w", err)
			}
			// A stream made here, still empty, expires like one written to.
			if err := d.rdb.ExpireNX(ctx, key, d.cfg.MaxAge).Err(); err != nil {
				return nil, fmt.Errorf("expire stream: %w", err)
			}
			return nil, nil
		}
		if err != nil || len(res) == 0 {
			return nil, err
		}
		return res[0].Messages, nil
	}
	mine, err := read("0")
	if err != nil || len(mine) > 0 {
		return mine, err
	}
	claimed, _, err := d.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: key, Group: Group, Consumer: d.cfg.Consumer,
		MinIdle: d.cfg.ClaimIdle, Start: "0-0", Count: count}).Result()
	if err != nil && !errors.Is(err, redis.Nil) && !strings.HasPrefix(err.Error(), "NOGROUP") {
		return nil, fmt.Errorf("claim: %w", err)
	}
	if len(claimed) > 0 {
		return claimed, nil
	}
	return read(">")
}

// deliver posts entries in batches of whole entries, acknowledging each
// batch after a 2xx, and tells whether every batch was posted. Entries
// older than MaxAge, and entries trimmed away while pending, are
// acknowledged without a POST.
func (d *Dispatcher) deliver(ctx context.Context, log *slog.Logger, key string, t target, entries []redis.XMessage) (bool, error) {
	now := d.cfg.Clock.Now()
	var drop []string
	var batch []string
	var events []Event
	flush := func() (bool, error) {
		if len(batch) == 0 {
			return true, nil
		}
		if !d.post(ctx, log, t, batch, events) {
			return false, nil
		}
		metrics.DeliveryEvents(metrics.EventsPosted, len(events))
		err := d.ack(ctx, key, batch)
		batch, events = batch[:0], events[:0]
		return true, err
	}
	for _, m := range entries {
		raw, _ := m.Values["c"].(string)
		var c Chunk
		if raw == "" || json.Unmarshal([]byte(raw), &c) != nil {
			drop = append(drop, m.ID) // trimmed while pending, or not ours
			continue
		}
		if ms, _, _ := strings.Cut(m.ID, "-"); ms != "" {
			if at, err := strconv.ParseInt(ms, 10, 64); err == nil && now.Sub(time.UnixMilli(at)) > d.cfg.MaxAge {
				log.Warn("delivery events given up: older than the maximum age", "entry", m.ID, "events", c.Size(), "max_age", d.cfg.MaxAge)
				metrics.DeliveryEvents(metrics.EventsGivenUp, c.Size())
				drop = append(drop, m.ID)
				continue
			}
		}
		ev := c.Events()
		if len(batch) > 0 && len(events)+len(ev) > d.cfg.BatchEvents {
			if ok, err := flush(); !ok || err != nil {
				return ok, errors.Join(err, d.ack(ctx, key, drop))
			}
		}
		batch = append(batch, m.ID)
		events = append(events, ev...)
	}
	ok, err := flush()
	return ok, errors.Join(err, d.ack(ctx, key, drop))
}

// ack acknowledges entries and deletes them from the stream: a posted
// entry is not needed again.
func (d *Dispatcher) ack(ctx context.Context, key string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err := d.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, key, Group, ids...)
		p.XDel(ctx, key, ids...)
		return nil
	})
	return err
}

// post makes one signed POST of events and tells whether it was answered
// 2xx. Its webhook-id depends only on the entries it carries, so the
// retries of one batch carry the same.
func (d *Dispatcher) post(ctx context.Context, log *slog.Logger, t target, ids []string, events []Event) bool {
	select {
	case d.slots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-d.slots }()
	now := d.cfg.Clock.Now()
	var p Payload
	p.Type, p.Timestamp, p.Data.Events = PayloadType, now.UTC(), events
	body, err := json.Marshal(p)
	if err != nil {
		log.Error("encode delivery events", "err", err)
		return false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		log.Warn("delivery event endpoint URL", "err", err)
		return false
	}
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{0})
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "chime-delivery-events/1")
	t.signer.Sign(req.Header, "msg_"+hex.EncodeToString(h.Sum(nil)[:16]), now, body)
	resp, err := d.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			log.Info("delivery event endpoint not reached; retrying", "host", req.URL.Host, "events", len(events), "err", err)
		}
		metrics.DeliveryEventPost(false)
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		log.Info("delivery event endpoint answered "+resp.Status+"; retrying", "host", req.URL.Host, "events", len(events))
		metrics.DeliveryEventPost(false)
		return false
	}
	metrics.DeliveryEventPost(true)
	return true
}
