// Package push delivers a chunk of users to their registered devices: one
// message per enabled device, through the channel of the device's platform
// (ios → APNs, android → FCM, web → a signed webhook to the device's
// endpoint).
//
// Per chunk, the sender makes a fixed number of round trips whatever the
// number of users: one query for the chunk's devices (app_id = ? AND user_id
// IN (...)), one Redis read of the devices an earlier attempt at the same
// chunk already reached, one rate-limit call per channel (more only while
// throttled), the provider requests, and one MySQL transaction for the
// chunk's status (per-channel counts and per-device failures, both upserts
// keyed by the chunk, so a chunk sent again overwrites its rows).
//
// Provider answers (sender.Outcome) decide what happens to a device:
//
//   - sent: counted, and never sent again by a retry of the chunk;
//   - invalid (APNs 410 Unregistered or BadDeviceToken, FCM UNREGISTERED or
//     INVALID_ARGUMENT, webhook 410): the device is disabled with the reason,
//     so later fires skip it, and the failure is recorded;
//   - failed: recorded with the provider's reason, not retried;
//   - retry (429, 5xx, network): sent again, only those devices, with
//     exponential backoff and jitter (github.com/cenkalti/backoff/v5), or
//     after the provider's Retry-After when it gave one. Retries stop at
//     Config.RetryFor or at the batch's validity window, which also ends
//     a request in flight (whatever the channel's own timeout and
//     retries): devices the window ran out on are recorded as expired,
//     and no request is started after it. Devices still
//     pending then make Send return an error: the worker releases the group
//     and retries it later from its checkpoint; the devices this attempt
//     reached are kept in Redis under the chunk's idempotency key, so the
//     next attempt skips them.
//
// Rate limits are per channel and shared by every worker: a GCRA limiter in
// Redis (github.com/go-redis/redis_rate). A chunk takes as many tokens as it
// has messages for the channel before sending; if the wait for the rest
// would end after the batch's validity window, those messages are recorded
// as expired instead of being sent late.
//
// What a message says comes from a Composer (package content's, wired in
// by the root package: templates, the device's language, tag processors);
// Plain uses the reminder's title and body as they are. A Merger, if any,
// first leaves out the users who were sent the same content shortly before;
// they count as delivered, under channel "merged".
package push

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/go-redis/redis_rate/v10"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/keyspace"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/store"
)

// Channel names, as recorded in delivery counts and failures.
const (
	APNs    = "apns"
	FCM     = "fcm"
	Webhook = "webhook"
	// None counts the users that have no enabled device.
	None = "none"
	// Merged counts the users left out because they were sent the same
	// content shortly before (a Merger); they count as delivered.
	Merged = "merged"
	// OptedOut counts the users left out because they opted out of push
	// (sender.Batch.Exclude); they are not failed.
	OptedOut = "opted_out"
)

// ChannelOf returns the channel that delivers to platform.
func ChannelOf(platform string) string {
	switch platform {
	case store.PlatformIOS:
		return APNs
	case store.PlatformAndroid:
		return FCM
	case store.PlatformWeb:
		return Webhook
	}
	return ""
}

// Channel is one provider: it sends each notification once and reports an
// outcome per notification, in order. Implemented by apns.Channel,
// fcm.Channel and webhook.Devices.
type Channel interface {
	Deliver(ctx context.Context, ns []sender.Notification) []sender.Outcome
}

// Device is a registered device, as a Composer sees it.
type Device struct {
	ID         int64
	UserID     string
	DeviceID   string
	Platform   string
	Token      string
	Secret     string
	Locale     string
	AppVersion string
}

// Message is what one device is sent.
type Message struct {
	Title string
	Body  string
	Data  map[string]string
}

// Composer writes the message for one device of a batch. maxBytes is the
// most bytes the title and body may take together on the device's channel
// (MaxMessage): a composer that renders templates stops there and returns
// an error rather than render more. The sender checks the limit again.
type Composer interface {
	Compose(b *sender.Batch, d Device, maxBytes int) (Message, error)
}

// Message limits by channel: the most bytes a message's title and body may
// take together. A longer message fails its device ("message exceeds 4096
// bytes") without reaching the provider. The provider's own limit on the
// whole payload, with the data and JSON quoting, still applies.
const (
	MaxAPNsMessage    = 4096     // APNs refuses payloads over 4 KB
	MaxFCMMessage     = 4096     // FCM refuses messages over 4 KB
	MaxWebhookMessage = 16 << 10 // a device webhook is a POST of ours; kept small all the same
)

// MaxMessage returns the message limit of a channel.
func MaxMessage(channel string) int {
	switch channel {
	case APNs:
		return MaxAPNsMessage
	case FCM:
		return MaxFCMMessage
	}
	return MaxWebhookMessage
}

// Plain composes the reminder's own title and body for every device, with
// the reminder, occurrence and location in the data.
type Plain struct{}

var _ Composer = Plain{}

// Compose implements Composer.
func (Plain) Compose(b *sender.Batch, _ Device, _ int) (Message, error) {
	return Message{Title: b.Title, Body: b.Body, Data: map[string]string{
		"reminder": b.Reminder, "occurrence": strconv.FormatInt(b.Occurrence, 10), "location": b.Location,
	}}, nil
}

// Merger leaves out the users of a batch who were already sent the same
// content within a window (package content's Merger, keyed by its
// Composer's content key). On error it returns every user with the error,
// and the sender delivers without merging.
type Merger interface {
	Merge(ctx context.Context, b *sender.Batch) (keep []string, err error)
}

// DefaultRetryFor bounds how long one chunk retries refused messages.
const DefaultRetryFor = 20 * time.Second

// Config configures the push sender.
type Config struct {
	// Limits are the per-channel rate limits shared by all workers, by
	// channel name; a channel without one is not limited.
	Limits map[string]redis_rate.Limit
	// Prefix starts the Redis keys of the sender (rate limits, devices
	// already reached per chunk). Defaults to keyspace.DefaultPrefix.
	Prefix string
	// RetryFor bounds how long one Send retries transient refusals before
	// it returns an error. Defaults to DefaultRetryFor (20s).
	RetryFor time.Duration
	// RetryInitial is the first backoff interval (doubling, ±50% jitter, at
	// most RetryMaxInterval). Defaults to 200ms.
	RetryInitial time.Duration
	// RetryMaxInterval caps one backoff interval. Defaults to 5s.
	RetryMaxInterval time.Duration
	// StoreTimeout bounds each MySQL and Redis call. Defaults to 10s.
	StoreTimeout time.Duration
	// Keyring opens web devices' signing secrets, stored sealed (package
	// seal). Secrets stored before sealing are read as they are; without a
	// keyring (nil) sealed ones do not open and those devices fail.
	Keyring *seal.Keyring
}

// Sender delivers batches to devices. Its zero value is not ready; use New.
type Sender struct {
	cfg      Config
	db       *gorm.DB
	rdb      redis.UniversalClient
	limiter  *redis_rate.Limiter
	channels map[string]Channel
	composer Composer
	merger   Merger
	clock    clock.Clock
	log      *slog.Logger
	apps     sync.Map // reminder ID -> app ID, for batches that do not name the app
}

var _ sender.Sender = (*Sender)(nil)

// New returns a push sender over channels (by channel name; a platform whose
// channel is missing gets its devices failed as "not configured"). A nil
// composer means Plain; a nil merger merges nothing.
func New(cfg Config, db *gorm.DB, rdb redis.UniversalClient, channels map[string]Channel, composer Composer, merger Merger, clk clock.Clock, log *slog.Logger) *Sender {
	cfg.Prefix = cmp.Or(cfg.Prefix, keyspace.DefaultPrefix)
	cfg.RetryFor = cmp.Or(cfg.RetryFor, DefaultRetryFor)
	if cfg.RetryInitial == 0 {
		cfg.RetryInitial = 200 * time.Millisecond
	}
	if cfg.RetryMaxInterval == 0 {
		cfg.RetryMaxInterval = 5 * time.Second
	}
	if cfg.StoreTimeout == 0 {
		cfg.StoreTimeout = 10 * time.Second
	}
	if composer == nil {
		composer = Plain{}
	}
	return &Sender{cfg: cfg, db: db, rdb: rdb, limiter: redis_rate.NewLimiter(rdb), channels: channels,
		composer: composer, merger: merger, clock: clk, log: log}
}

// item is one device's message within a chunk.
type item struct {
	dev     Device
	channel string
	n       sender.Notification
	out     sender.Outcome
	expired bool
	done    bool // a final outcome: sent, invalid, failed or expired
}

// Send delivers b to every enabled device of its users.
func (s *Sender) Send(ctx context.Context, b *sender.Batch) (sender.Result, error) {
	if len(b.Users) == 0 {
		return sender.Result{}, nil
	}
	app := b.App
	if app == 0 {
		// A task queued before payloads named the app.
		var err error
		if app, err = s.appOf(ctx, b.ReminderID); err != nil {
			return sender.Result{}, err
		}
	}
	users := b.Users
	if s.merger != nil {
		keep, err := s.merger.Merge(ctx, b)
		if err != nil {
			s.log.Warn("merge identical reminders; delivering without merging", "occurrence", b.Occurrence, "group", b.Group, "err", err)
			keep = b.Users
		}
		users = keep
	}
	if b.Exclude != nil {
		// Users who opted out of push get nothing from this channel.
		users = slices.DeleteFunc(slices.Clone(users), func(u string) bool { return b.Excluded(u, sender.ChannelPush) })
	}
	devs, err := s.devices(ctx, app, users)
	if err != nil {
		return sender.Result{}, err
	}
	reached, err := s.reachedBefore(ctx, b.IdempotencyKey)
	if err != nil {
		return sender.Result{}, err
	}
	var items []*item
	byChannel := map[string][]*item{}
	collapse := collapseID(b.Reminder)
	unsealed, unsealErr := 0, error(nil) // devices whose secret did not open, and the first error
	for _, d := range devs {
		it := &item{dev: d, channel: ChannelOf(d.Platform)}
		items = append(items, it)
		switch {
		case reached[d.ID]:
			// An earlier attempt at this chunk reached it.
			it.out, it.done = sender.Outcome{Status: sender.Sent}, true
		case s.channels[it.channel] == nil:
			it.out, it.done = sender.Outcome{Status: sender.Failed, Reason: it.channel + " channel not configured"}, true
		default:
			secret, err := s.openSecret(app, d)
			if err != nil {
				it.out, it.done = sender.Outcome{Status: sender.Failed, Reason: "signing secret does not open"}, true
				if unsealed++; unsealErr == nil {
					unsealErr = err
				}
				continue
			}
			limit := MaxMessage(it.channel)
			msg, err := s.composer.Compose(b, d, limit)
			if err == nil && len(msg.Title)+len(msg.Body) > limit {
				err = fmt.Errorf("message exceeds %d bytes", limit)
			}
			if err != nil {
				it.out, it.done = sender.Outcome{Status: sender.Failed, Reason: "compose: " + err.Error()}, true
				continue
			}
			it.n = sender.Notification{
				ID:    uuid.NewSHA1(uuid.NameSpaceURL, []byte(b.IdempotencyKey+"/"+strconv.FormatInt(d.ID, 10))).String(),
				Token: d.Token, Secret: secret, Title: msg.Title, Body: msg.Body, Data: msg.Data,
				ExpiresAt: b.ExpiresAt, CollapseID: collapse,
			}
			byChannel[it.channel] = append(byChannel[it.channel], it)
		}
	}
	if unsealed > 0 {
		// The operator's to fix (a key left out of CHIME_SECRET_KEYS, a
		// value altered): one line per chunk, not per device.
		s.log.Error("web device signing secrets do not open; those devices are failed", "occurrence", b.Occurrence,
			"group", b.Group, "devices", unsealed, "err", unsealErr)
	}
	var g errgroup.Group
	for name, its := range byChannel {
		g.Go(func() error {
			s.deliver(ctx, name, s.channels[name], its, b.ExpiresAt)
			return nil
		})
	}
	_ = g.Wait()

	res, pending := summarize(b, users, items)
	if err := s.disable(ctx, items); err != nil {
		return sender.Result{}, err
	}
	if pending > 0 || ctx.Err() != nil {
		// Cut short (retries ran out, or the lease was lost or the worker
		// is stopping): failures known for good are recorded now, the
		// devices reached are remembered for the next attempt, and counts
		// wait for the attempt that completes the chunk.
		if err := s.record(ctx, b, nil, res.Failures); err != nil {
			s.log.Warn("record failures", "occurrence", b.Occurrence, "group", b.Group, "err", err)
		}
		if err := s.rememberReached(ctx, b, items); err != nil {
			return sender.Result{}, err
		}
		if err := ctx.Err(); err != nil {
			return sender.Result{}, err
		}
		return sender.Result{}, fmt.Errorf("push: %d devices still refused after retries", pending)
	}
	if err := s.record(ctx, b, res.Channels, res.Failures); err != nil {
		return sender.Result{}, err
	}
	return res, nil
}

// errWindowPassed ends the attempts at a batch whose validity window is over.
var errWindowPassed = errors.New("validity window passed")

// deliver sends its items through ch, retrying the transient refusals.
func (s *Sender) deliver(ctx context.Context, name string, ch Channel, items []*item, expiresAt time.Time) {
	pending := items
	maxElapsed := s.cfg.RetryFor
	byWindow := false // the window ends before RetryFor
	wctx := ctx
	if !expiresAt.IsZero() {
		left := expiresAt.Sub(s.clock.Now())
		if left <= 0 {
			expire(pending, "validity window passed")
			return
		}
		if left < maxElapsed {
			maxElapsed, byWindow = left, true
		}
		// The window's end cancels a request in flight too, as the
		// channel's own timeout would; on the sender's clock the window
		// has left to run, and the deadline is that far away.
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeoutCause(ctx, left, errWindowPassed)
		defer cancel()
	}
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = s.cfg.RetryInitial
	bo.MaxInterval = s.cfg.RetryMaxInterval
	attempt := 0
	op := func() (struct{}, error) {
		attempt++
		if !expiresAt.IsZero() && !s.clock.Now().Before(expiresAt) {
			expire(pending, "validity window passed while retrying")
			return struct{}{}, nil
		}
		ready, err := s.throttle(wctx, name, pending, expiresAt)
		if err != nil {
			return struct{}{}, err
		}
		if len(ready) == 0 {
			return struct{}{}, nil
		}
		ns := make([]sender.Notification, len(ready))
		for i, it := range ready {
			ns[i] = it.n
		}
		outs := ch.Deliver(wctx, ns)
		var next []*item
		var wait time.Duration
		for i, it := range ready {
			it.out = outs[i]
			if it.out.Status == sender.Retry {
				next = append(next, it)
				wait = max(wait, it.out.RetryAfter)
				continue
			}
			it.done = true
		}
		pending = next
		if len(pending) == 0 {
			return struct{}{}, nil
		}
		s.log.Debug("retrying refused notifications", "channel", name, "devices", len(pending), "attempt", attempt,
			"reason", pending[0].out.Reason, "retry_after", wait)
		if wait > 0 {
			if !expiresAt.IsZero() && s.clock.Now().Add(wait).After(expiresAt) {
				expire(pending, "provider asked to wait past the validity window")
				return struct{}{}, nil
			}
			return struct{}{}, &backoff.RetryAfterError{Duration: wait}
		}
		return struct{}{}, fmt.Errorf("%d %s notifications refused: %s", len(pending), name, pending[0].out.Reason)
	}
	_, err := backoff.Retry(wctx, op, backoff.WithBackOff(bo), backoff.WithMaxElapsedTime(maxElapsed))
	switch {
	case err == nil || ctx.Err() != nil:
		// Done, or the worker gave the chunk up (lease lost, stopping).
	case errors.Is(context.Cause(wctx), errWindowPassed):
		expire(pending, "validity window passed before "+name+" answered")
	case byWindow:
		// The next retry would have started after the window.
		expire(pending, "validity window passed while retrying")
	default:
		s.log.Warn("channel refused notifications after retries", "channel", name, "devices", len(pending), "err", err)
	}
}

// openSecret returns the plaintext signing secret of a web device ("" for
// devices without one).
func (s *Sender) openSecret(app int64, d Device) (string, error) {
	if d.Secret == "" {
		return "", nil
	}
	secret, err := s.cfg.Keyring.Open(d.Secret, store.DeviceSecretAAD(app, d.UserID, d.DeviceID))
	if err != nil {
		return "", fmt.Errorf("open the secret of %s/%s: %w", d.UserID, d.DeviceID, err)
	}
	return string(secret), nil
}

// collapseID lets a newer message of the same reminder replace an older one
// the device has not shown yet. APNs takes at most 64 bytes; longer keys
// are hashed.
func collapseID(key string) string {
	if len(key) <= 64 {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func expire(items []*item, reason string) {
	for _, it := range items {
		it.expired, it.done = true, true
		it.out = sender.Outcome{Status: sender.Failed, Reason: "expired: " + reason}
	}
}

// throttle takes rate-limit tokens for items from the channel's shared
// limiter, waiting while it must; items whose token would come after
// expiresAt are expired. It returns the items that may be sent now.
func (s *Sender) throttle(ctx context.Context, name string, items []*item, expiresAt time.Time) ([]*item, error) {
	limit, ok := s.cfg.Limits[name]
	if !ok || limit.IsZero() {
		return items, nil
	}
	var ready []*item
	rest := items
	for len(rest) > 0 {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
		res, err := s.limiter.AllowAtMost(rctx, s.cfg.Prefix+"rate:"+name, limit, len(rest))
		cancel()
		if err != nil {
			return ready, fmt.Errorf("rate limit %s: %w", name, err)
		}
		ready, rest = append(ready, rest[:res.Allowed]...), rest[res.Allowed:]
		if len(rest) == 0 {
			break
		}
		wait := max(res.RetryAfter, time.Millisecond)
		if !expiresAt.IsZero() && s.clock.Now().Add(wait).After(expiresAt) {
			expire(rest, "rate limit of "+name+" would delay it past the validity window")
			break
		}
		select {
		case <-ctx.Done():
			return ready, ctx.Err()
		case <-s.clock.After(wait):
		}
	}
	return ready, nil
}

// summarize counts a finished chunk per channel and per user, and returns
// how many devices are still pending (refused transiently to the end).
func summarize(b *sender.Batch, kept []string, items []*item) (sender.Result, int) {
	res := sender.Result{Channels: map[string]sender.Counts{}}
	type userState struct{ devices, sent, expired int }
	users := make(map[string]*userState, len(b.Users))
	for _, u := range kept {
		users[u] = &userState{}
	}
	pending := 0
	for _, it := range items {
		u := users[it.dev.UserID]
		if u == nil {
			continue
		}
		u.devices++
		c := res.Channels[it.channel]
		switch {
		case !it.done:
			pending++
		case it.out.Status == sender.Sent:
			c.Sent++
			u.sent++
		case it.expired:
			c.Expired++
			u.expired++
		default:
			c.Failed++
		}
		if it.done && it.out.Status != sender.Sent {
			res.Failures = append(res.Failures, sender.Failure{User: it.dev.UserID, Device: it.dev.DeviceID, Channel: it.channel, Reason: it.out.Reason})
		}
		res.Channels[it.channel] = c
	}
	for _, u := range b.Users {
		st := users[u]
		switch {
		case st == nil && b.Excluded(u, sender.ChannelPush):
			c := res.Channels[OptedOut]
			c.Skipped++
			res.Channels[OptedOut] = c
		case st == nil:
			// Merged into the same content sent shortly before: the user
			// has the message.
			c := res.Channels[Merged]
			c.Skipped++
			res.Channels[Merged] = c
		case st.sent > 0:
		case st.devices == 0:
			res.Skipped++
			res.Failed++
			res.FailedUsers = append(res.FailedUsers, u)
			c := res.Channels[None]
			c.Skipped++
			res.Channels[None] = c
		case st.expired > 0:
			res.Expired++
			res.Failed++
			res.FailedUsers = append(res.FailedUsers, u)
			res.ExpiredUsers = append(res.ExpiredUsers, u)
		default:
			res.Failed++
			res.FailedUsers = append(res.FailedUsers, u)
		}
	}
	return res, pending
}

// appOf finds the app of a reminder, for a batch that does not name it.
func (s *Sender) appOf(ctx context.Context, reminder int64) (int64, error) {
	if reminder == 0 {
		return 0, errors.New("push: batch has no reminder ID")
	}
	if app, ok := s.apps.Load(reminder); ok {
		return app.(int64), nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()
	var apps []int64
	if err := s.db.WithContext(ctx).Model(&store.Reminder{}).Where("id = ?", reminder).Pluck("app_id", &apps).Error; err != nil {
		return 0, fmt.Errorf("push: find app: %w", err)
	}
	if len(apps) == 0 {
		// Deleted since the fire: nobody to send to is not an error worth retrying.
		return 0, nil
	}
	s.apps.Store(reminder, apps[0])
	return apps[0], nil
}

// devices reads the enabled devices of users in one query.
func (s *Sender) devices(ctx context.Context, app int64, users []string) ([]Device, error) {
	if app == 0 || len(users) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()
	// Device's fields are the columns read: gorm selects and scans them.
	var out []Device
	err := s.db.WithContext(ctx).Model(&store.Device{}).
		Where("app_id = ? AND user_id IN ? AND disabled_at IS NULL", app, users).
		Order("user_id, device_id").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("push: load devices: %w", err)
	}
	return out, nil
}

func (s *Sender) reachedKey(key string) string { return s.cfg.Prefix + "reached:" + key }

// reachedBefore returns the devices an earlier attempt at the chunk reached.
func (s *Sender) reachedBefore(ctx context.Context, key string) (map[int64]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()
	ids, err := s.rdb.SMembers(ctx, s.reachedKey(key)).Result()
	if err != nil {
		return nil, fmt.Errorf("push: devices reached before: %w", err)
	}
	out := make(map[int64]bool, len(ids))
	for _, id := range ids {
		if n, err := strconv.ParseInt(id, 10, 64); err == nil {
			out[n] = true
		}
	}
	return out, nil
}

// rememberReached keeps the devices this attempt reached, for the next
// attempt at the chunk, until a while after the validity window.
func (s *Sender) rememberReached(ctx context.Context, b *sender.Batch, items []*item) error {
	var ids []any
	for _, it := range items {
		if it.done && it.out.Status == sender.Sent {
			ids = append(ids, it.dev.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	until := b.ExpiresAt
	if until.IsZero() {
		until = s.clock.Now().Add(24 * time.Hour)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StoreTimeout)
	defer cancel()
	key := s.reachedKey(b.IdempotencyKey)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, key, ids...)
		p.ExpireAt(ctx, key, until.Add(10*time.Minute))
		return nil
	})
	if err != nil {
		return fmt.Errorf("push: remember reached devices: %w", err)
	}
	return nil
}
