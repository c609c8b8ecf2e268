// Package online is the delivery channel that reaches users over the app's
// own WebSocket connection (package gateway) when they are online, and
// through a fallback channel and the inbox when they are not.
//
// Per chunk, in three pipelined Redis round trips whatever its size, each
// of plain commands (a few per user, at most one per shard of the users,
// keyspace.UserShards, for presence), no script:
//
//  1. The users' inboxes and presence are read (inbox.Store.Prepare, one
//     HMGET per shard for presence).
//  2. The messages are stored ("not yet pushed"), those of users online in
//     1 as sent over the gateway at once, and presence is read again, in
//     one pipeline; the second read decides where each message goes, so
//     that a user connecting meanwhile gets it through the stream, the
//     replay or both. The inbox copy is what makes delivery lossless: it
//     stays until the client acknowledges it, so a message published to a
//     gateway that dies is replayed when the user connects again. The
//     per-user status detail is the inbox entry itself (inbox.Mark).
//  3. One stream entry per gateway instance that holds some of the users
//     (see presence.Envelope), and a sent mark for the users who connected
//     between the two reads of presence, pipelined.
//
// The chunk's first stores (its own users' and their contacts') are then
// counted in MySQL once per chunk (status.Recorder.CountChunk): taken from
// what the inboxes hold, whichever try stored it, so a try that stopped
// between its store and its count (a lost connection, a worker that died)
// is counted by the next. The push fallback's and the expired messages'
// states are recorded with their detail (status.Recorder.Record), counted
// once per state however often the chunk is sent.
//
// Users who are offline are handed to the fallback sender (push channels),
// unless the reminder is marked deliver-when-online, in which case the
// inbox copy waits and the gateway sends it when the user connects. If the
// reminder asks for it, an offline user's contacts get a copy (marked with
// for_user): online contacts over their connection, the others in their
// inbox.
package online

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/internal/rscript"
	"github.com/chime-dev/chime/keyspace"
	"github.com/chime-dev/chime/presence"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/status"
)

// Contacts finds the associated users of users.
type Contacts interface {
	ContactsOf(ctx context.Context, app int64, users []string) (map[string][]string, error)
}

// Config configures the sender.
type Config struct {
	// Prefix starts every key. Defaults to keyspace.DefaultPrefix.
	Prefix string
}

// Sender delivers online, falls back offline.
type Sender struct {
	cfg      Config
	rdb      redis.UniversalClient
	presence *presence.Registry
	inbox    *inbox.Store
	status   *status.Recorder
	contacts Contacts
	fallback sender.Sender
	clock    clock.Clock
	log      *slog.Logger
}

var _ sender.Sender = (*Sender)(nil)

// New returns the sender. fallback receives offline users of reminders not
// marked deliver-when-online; contacts may be nil (no associated users).
func New(cfg Config, rdb redis.UniversalClient, p *presence.Registry, in *inbox.Store, st *status.Recorder,
	contacts Contacts, fallback sender.Sender, clk clock.Clock, log *slog.Logger) *Sender {
	cfg.Prefix = cmp.Or(cfg.Prefix, keyspace.DefaultPrefix)
	return &Sender{cfg: cfg, rdb: rdb, presence: p, inbox: in, status: st, contacts: contacts, fallback: fallback,
		clock: clk, log: log}
}

// item is one message for one user.
type item struct {
	user string
	msg  inbox.Message
}

// Send delivers one chunk. An error means the chunk is to be tried again:
// the inbox stores each message once, and clients drop a message whose ID
// they have seen.
func (s *Sender) Send(ctx context.Context, b *sender.Batch) (sender.Result, error) {
	msg := inbox.Message{
		ID: inbox.MessageID(b.Occurrence), Occurrence: b.Occurrence, Reminder: b.Reminder, Title: b.Title,
		Body: b.Body, Location: b.Location, FireAt: b.FireAt, Data: b.Data,
	}
	if !b.ExpiresAt.IsZero() {
		exp := b.ExpiresAt.UTC()
		msg.ExpiresAt = &exp
	}
	items := make([]item, 0, len(b.Users))
	var noInbox []string // opted out of the inbox: reached by the fallback only
	for _, u := range b.Users {
		if b.Excluded(u, sender.ChannelInbox) {
			noInbox = append(noInbox, u)
			continue
		}
		items = append(items, item{user: u, msg: msg})
	}
	offline, d, err := s.deliver(ctx, b.App, items)
	if err != nil {
		return sender.Result{}, err
	}
	res := sender.Result{Online: len(items) - len(offline), Offline: len(offline)}
	offline = append(offline, noInbox...)
	entries := d.entries
	if b.NotifyContacts && s.contacts != nil && len(offline) > 0 {
		more, err := s.notifyContacts(ctx, b.App, msg, offline)
		if err != nil {
			return sender.Result{}, err
		}
		entries = append(entries, more.entries...)
		d.others = more.firsts
	}
	// The chunk's first stores are counted before its push fallback: a
	// chunk that fails from here on is sent again and counts nothing more.
	if len(b.Users) > 0 {
		s.countChunk(ctx, b, d)
	}
	if len(offline) == 0 {
		return res, s.record(ctx, entries)
	}
	// Offline users who opted out of push keep the inbox copy only.
	pushed := slices.DeleteFunc(slices.Clone(offline), func(u string) bool { return b.Excluded(u, sender.ChannelPush) })
	if !b.DeliverWhenOnline && s.fallback != nil && len(pushed) > 0 {
		fb := *b
		fb.Users = pushed
		r, err := s.fallback.Send(ctx, &fb)
		if err != nil {
			return sender.Result{}, fmt.Errorf("fallback: %w", err)
		}
		res.Failed = r.Failed
		res.FailedUsers = r.FailedUsers
		refused := make(map[string]bool, len(r.FailedUsers))
		for _, u := range r.FailedUsers {
			refused[u] = true
		}
		for _, u := range pushed {
			st := status.Sent
			if refused[u] {
				st = status.Failed
			}
			entries = append(entries, status.Entry{App: b.App, User: u, Message: msg.ID, Occurrence: b.Occurrence, Channel: status.Push, State: st})
		}
	}
	return res, s.record(ctx, entries)
}

// countChunk adds the chunk's first stores to the aggregates, once per
// chunk (status.Recorder.CountChunk); their detail is in the inbox.
func (s *Sender) countChunk(ctx context.Context, b *sender.Batch, d delivered) {
	if s.status == nil {
		return
	}
	if err := s.status.CountChunk(ctx, b.Occurrence, b.Group, b.Users[len(b.Users)-1], d.counts, d.firsts, d.others); err != nil {
		// The message is delivered; a lost count must not send it again.
		s.log.Warn("count delivery status", "err", err)
	}
}

// count adds first states to the aggregates; their detail is in the inbox.
func (s *Sender) count(ctx context.Context, entries []status.Entry) {
	if s.status == nil {
		return
	}
	if err := s.status.Count(ctx, entries); err != nil {
		// The message is delivered; a lost count must not send it again.
		s.log.Warn("count delivery status", "err", err)
	}
}

func (s *Sender) record(ctx context.Context, entries []status.Entry) error {
	if s.status == nil {
		return nil
	}
	if err := s.status.Record(ctx, entries, s.clock.Now()); err != nil {
		// The message is delivered; a lost status record must not send it again.
		s.log.Warn("record delivery status", "err", err)
	}
	return nil
}

func (s *Sender) notifyContacts(ctx context.Context, app int64, msg inbox.Message, offline []string) (delivered, error) {
	of, err := s.contacts.ContactsOf(ctx, app, offline)
	if err != nil {
		return delivered{}, fmt.Errorf("load contacts: %w", err)
	}
	var items []item
	for _, u := range offline {
		for _, c := range of[u] {
			m := msg
			m.ID, m.ForUser = inbox.ContactMessageID(msg.Occurrence, u), u
			items = append(items, item{user: c, msg: m})
		}
	}
	if len(items) == 0 {
		return delivered{}, nil
	}
	_, d, err := s.deliver(ctx, app, items)
	return d, err
}

// delivered are the states deliver leaves to its caller.
type delivered struct {
	// entries are the expired messages, recorded with their detail (the
	// inbox no longer has them).
	entries []status.Entry
	// counts are the first stores of the items' messages, whichever try
	// made them (this one or one before it that failed), to be counted
	// once per chunk; firsts those this try made; others the first
	// stores of contact copies (for other users than the chunk's).
	counts, firsts, others []status.Entry
}

// deliver stores each item in its user's inbox and publishes it to the
// gateways holding the user, and returns the users found offline and the
// states to record.
func (s *Sender) deliver(ctx context.Context, app int64, items []item) ([]string, delivered, error) {
	now := s.clock.Now()
	// Each distinct message is encoded once: the inbox stores and the
	// gateways send the same bytes.
	bodies := map[string]json.RawMessage{}
	for _, it := range items {
		if _, ok := bodies[it.msg.ID]; !ok {
			b, err := inbox.Encode(it.msg, now)
			if err != nil {
				return nil, delivered{}, err
			}
			bodies[it.msg.ID] = b
		}
	}
	stored := make([]inbox.Item, len(items))
	users := make([]string, len(items))
	for i, it := range items {
		stored[i] = inbox.Item{User: it.user, ID: it.msg.ID, Body: bodies[it.msg.ID]}
		users[i] = it.user
	}
	// The users' presence is read with their inboxes, so that a message to
	// a user online is stored as sent over the gateway, and read again with
	// the store, which decides where it goes: store before looking up, in
	// one pipeline, and a user connecting meanwhile gets the message
	// through the stream, the replay or both.
	var before *presence.Lookups
	adds, err := s.inbox.Prepare(ctx, app, stored, now, func(p redis.Pipeliner) {
		before = s.presence.LookupCmds(ctx, p, app, users)
	})
	if err != nil {
		return nil, delivered{}, fmt.Errorf("store: %w", err)
	}
	wasOnline := make([]bool, len(items))
	for i, inst := range before.Instances() {
		wasOnline[i] = len(inst) > 0
	}
	var looks *presence.Lookups
	_, err = rscript.Pipelined(ctx, s.rdb, nil, func(p redis.Pipeliner) {
		adds.Cmds(ctx, p, now, wasOnline)
		looks = s.presence.LookupCmds(ctx, p, app, users)
	})
	if err != nil {
		return nil, delivered{}, fmt.Errorf("store and look up: %w", err)
	}
	dropped, online := adds.Dropped(), looks.Instances()
	type target struct {
		instance, msg string
	}
	to := map[target][]string{}
	var targets []target
	var offline []string
	// The first store of each message is counted once per chunk, whichever
	// try made it (d.counts); late are the messages stored as not sent
	// that go to a gateway all the same (the user connected between the
	// two reads, or since the try that stored them), marked sent with the
	// publish and counted by that mark.
	var d delivered
	var late []int
	for i, it := range items {
		for _, id := range dropped[i] {
			d.entries = append(d.entries, status.Entry{App: app, User: it.user, Message: id, Occurrence: inbox.OccurrenceOf(id), Channel: status.Inbox, State: status.Expired})
		}
		inst := online[i]
		if len(inst) == 0 {
			offline = append(offline, it.user)
		}
		fresh := adds.Stored(i)
		had, hadOnline, marked := adds.Before(i)
		if fresh || had {
			e, counted := sentOver(app, it), true
			switch {
			case fresh && wasOnline[i], !fresh && hadOnline:
			case !fresh && marked:
				// Stored as not sent and marked sent since (a replay, a
				// late mark), which counted it: as a user late at the
				// first try is, it counts nothing as pending.
				counted = false
			case len(inst) > 0:
				late, counted = append(late, i), false // counted by its mark
			default:
				e.Channel, e.State = status.Inbox, status.Pending
			}
			if counted {
				d.counts = append(d.counts, e)
				if fresh {
					d.firsts = append(d.firsts, e)
				}
			}
		}
		for _, in := range inst {
			t := target{in, it.msg.ID}
			if _, ok := to[t]; !ok {
				targets = append(targets, t)
			}
			to[t] = append(to[t], it.user)
		}
	}
	if len(targets) == 0 {
		return offline, d, nil
	}
	var encErr error
	marks := make([]*redis.BoolCmd, len(late))
	_, err = rscript.Pipelined(ctx, s.rdb, nil, func(p redis.Pipeliner) {
		for _, t := range targets {
			env := presence.Envelope{App: app, Users: to[t], Message: bodies[t.msg]}
			if _, err := presence.PublishCmd(ctx, p, s.cfg.Prefix, t.instance, env); err != nil && encErr == nil {
				encErr = err
			}
		}
		for j, i := range late {
			marks[j] = s.inbox.SentCmd(ctx, p, app, items[i].user, items[i].msg.ID, now)
		}
	})
	if err != nil {
		return nil, delivered{}, fmt.Errorf("publish to gateways: %w", err)
	}
	var counts []status.Entry
	for j, i := range late {
		if marks[j].Val() {
			counts = append(counts, sentOver(app, items[i]))
		}
	}
	s.count(ctx, counts)
	return offline, d, encErr
}

// sentOver is the status of it sent over the gateway.
func sentOver(app int64, it item) status.Entry {
	return status.Entry{App: app, User: it.user, Message: it.msg.ID, Occurrence: it.msg.Occurrence, Channel: status.Gateway, State: status.Sent}
}
