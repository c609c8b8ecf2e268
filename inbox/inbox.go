// Package inbox keeps, in Redis, the messages a user has not been pushed yet
// and those pushed but not read, and the announcements of each region.
//
// Per user, in keys carrying the hash tag of the user's shard
// (keyspace.UserShards, keyspace.Shard), so that a chunk's users spread
// over the slots of a Redis Cluster and a message's body is kept once per
// shard, not per user:
//
//   - P{app:uN}#ib:<user>: a hash of the user's entries, up to four fields
//     per message: "s:<id>" when it was stored (pending since), "d:<id>"
//     when the client acknowledged it (unread since), "r:<id>" when it was
//     read, and "g:<id>" when it was sent over a gateway later than it was
//     stored (a replay on connect, or a user who connected while the
//     worker stored it). Every personal message is pending first,
//     also for a user who is online, and leaves that state only when the
//     client acknowledges it (over the socket or the API). A message sent to
//     a gateway that dies before the client's ack is therefore still
//     pending, and is replayed when the user connects again. A read message
//     is no longer listed; its fields stay, so that the same message stored
//     again (a chunk sent twice) is not pending again, until the next store
//     drops them. The values are Unix ms; one ending in "g" was set for the
//     gateway: an "s:" stored while the user was online (and sent over the
//     gateway at once), a "d:" or "r:" the client sent over its socket
//     rather than through the API. The hash is thus also the per-user
//     status of the gateway and inbox channels (Marks; package status
//     shows it), so delivering and acknowledging a message costs no
//     status write of its own.
//   - P{app:uN}#m:<id>: a message's body, once per shard, not per user,
//     kept TTL + UnreadTTL after it was first stored (as long as it can
//     stay pending, then unread).
//
// Every write is a plain command, pipelined with those of the other users
// of a chunk or of a batch of acks: a store reads the users' hashes in one
// round trip (HGETALL) and writes them in the next (HSETNX of the new
// entries, HDEL of those it drops, PEXPIRE), an ack reads the fields of
// the IDs it names (HMGET) and sets them (HSETNX), and a replay on connect
// marks what it sent (HSETNX of "g:"). A field, once set, is
// never set again, so two writers racing (a worker retrying a chunk, two
// gateways applying acks) each change a message's state at most once
// between them, and the one whose HSETNX set it is the one that reports
// the change, counted once. A store's drops are decided on what it read:
// a message the client acknowledges while a store drops it (over the cap
// or past its TTL) is reported delivered by the ack and expired by the
// store, and leaves the inbox; two stores racing for a full inbox may both
// drop its oldest message (reported twice, which status counts once) and
// leave one message over the cap until the next store. Every write leaves
// the hash with an expiry, also one that re-creates a hash that vanished
// between its read and its write.
//
// A pending message is kept TTL after it was stored, an unread one
// UnreadTTL after it was acknowledged; older ones are no longer returned
// and are dropped at the next store. Each state is capped (Config.Cap):
// a store into a full one drops the oldest, and a list shows the newest Cap
// of each. A user's hash expires the longer of TTL and UnreadTTL after the
// last store (an ack extends it when the unread message would otherwise
// outlive it), so a user who does not come back costs nothing. Messages
// have deterministic IDs, so a worker that stores the same chunk twice
// (after a crash) stores each message once, and a message already
// acknowledged or read is not stored again.
package inbox

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chime-dev/chime/keyspace"
)

// Message is one personal message as stored and as sent to clients.
type Message struct {
	ID         string          `json:"id"`
	Occurrence int64           `json:"occurrence"`
	Reminder   string          `json:"reminder"`
	Title      string          `json:"title"`
	Body       string          `json:"body"`
	Location   string          `json:"location,omitempty"`
	FireAt     time.Time       `json:"fire_at"`
	Data       json.RawMessage `json:"data,omitempty"`
	// ForUser is set on the copy sent to an associated user (a contact) of
	// a user who was offline: the user it was meant for.
	ForUser string `json:"for_user,omitempty"`
	// StoredAt is when the message entered the inbox.
	StoredAt time.Time `json:"stored_at"`
	// ExpiresAt ends the reminder's validity window: a message still
	// pending after it is not replayed (stale reminders are worse than
	// none).
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Expired reports whether m's validity window ended before now.
func (m Message) Expired(now time.Time) bool { return m.ExpiresAt != nil && now.After(*m.ExpiresAt) }

// MessageID is the ID of occurrence's message to its own subscriber.
func MessageID(occurrence int64) string { return fmt.Sprintf("o%d", occurrence) }

// ContactMessageID is the ID of the copy of occurrence's message sent to a
// contact of user.
func ContactMessageID(occurrence int64, user string) string {
	return fmt.Sprintf("o%d-for-%s", occurrence, user)
}

// OccurrenceOf returns the occurrence a message ID belongs to, or 0.
func OccurrenceOf(id string) int64 {
	var o int64
	if len(id) < 2 || id[0] != 'o' {
		return 0
	}
	for _, c := range id[1:] {
		if c < '0' || c > '9' {
			break
		}
		o = o*10 + int64(c-'0')
	}
	return o
}

// Defaults of the Config.
const (
	DefaultCap       = 100
	DefaultTTL       = 72 * time.Hour
	DefaultUnreadTTL = 24 * time.Hour
)

// Config configures a store.
type Config struct {
	// Prefix starts every key. Defaults to keyspace.DefaultPrefix.
	Prefix string
	// Cap is the most messages kept per user in each of the two sets.
	// Defaults to DefaultCap (100).
	Cap int
	// TTL is how long a pending message is kept. Defaults to
	// DefaultTTL (72h).
	TTL time.Duration
	// UnreadTTL is how long an acknowledged message is kept unread.
	// Defaults to DefaultUnreadTTL (24h).
	UnreadTTL time.Duration
}

// Store is the per-user inbox.
type Store struct {
	cfg Config
	rdb redis.UniversalClient
}

// New returns a store.
func New(cfg Config, rdb redis.UniversalClient) *Store {
	cfg.Prefix = cmp.Or(cfg.Prefix, keyspace.DefaultPrefix)
	cfg.Cap = cmp.Or(cfg.Cap, DefaultCap)
	cfg.TTL = cmp.Or(cfg.TTL, DefaultTTL)
	cfg.UnreadTTL = cmp.Or(cfg.UnreadTTL, DefaultUnreadTTL)
	return &Store{cfg: cfg, rdb: rdb}
}

// Config returns the store's configuration with its defaults.
func (s *Store) Config() Config { return s.cfg }

// key is the hash of the user's entries.
func (s *Store) key(app int64, user string) string {
	return keyspace.Shard(s.cfg.Prefix, app, user) + "ib:" + user
}

// bodyKey holds one message's body for the users of one shard.
func (s *Store) bodyKey(app int64, user, id string) string {
	return keyspace.Shard(s.cfg.Prefix, app, user) + "m:" + id
}

// keep is how long a user's hash lives after its last store.
func (s *Store) keep() time.Duration { return max(s.cfg.TTL, s.cfg.UnreadTTL) }

// The fields of a user's hash: what a message's ID follows.
const (
	storedField = "s:"
	ackedField  = "d:"
	readField   = "r:"
	sentField   = "g:"
)

// overGateway ends a value set for the gateway: an "s:" stored while the
// user was online, a "d:" or "r:" sent over the user's socket.
const overGateway = "g"

// stamp is the value of a field set at ms, over the gateway or not.
func stamp(ms int64, gateway bool) string {
	v := strconv.FormatInt(ms, 10)
	if gateway {
		v += overGateway
	}
	return v
}

// unstamp reads a value stamp wrote.
func unstamp(v string) (ms int64, gateway bool, err error) {
	v, gateway = strings.CutSuffix(v, overGateway)
	ms, err = strconv.ParseInt(v, 10, 64)
	return ms, gateway, err
}

// valid reports whether id can be stored: IDs that are empty or hold a
// line break are never stored and match nothing.
func valid(id string) bool { return id != "" && !strings.Contains(id, "\n") }

// entry is one message of a user's hash: when it was stored, sent over a
// gateway after it was stored, acknowledged and read, in Unix ms (0: not),
// and which of these were over the gateway.
type entry struct {
	id                        string
	stored, sent, acked, read int64
	storedOnline              bool
	ackedOver, readOver       bool
	// added marks an entry a Prepare makes for an item, not read from
	// Redis.
	added bool
}

func (e *entry) pending() bool { return e.stored != 0 && e.acked == 0 && e.read == 0 }
func (e *entry) unread() bool  { return e.stored != 0 && e.acked != 0 && e.read == 0 }

// live tells whether e is still in the inbox at now (ms): pending and
// stored within TTL, or unread and acknowledged within UnreadTTL. Older
// ones are no longer listed nor acknowledged, and the next store drops
// them.
func (s *Store) live(e *entry, now int64) bool {
	switch {
	case e.pending():
		return e.stored > now-s.cfg.TTL.Milliseconds()
	case e.unread():
		return e.acked > now-s.cfg.UnreadTTL.Milliseconds()
	}
	return false
}

// entries is what a user's hash holds.
type entries struct {
	byID map[string]*entry
	// orphans are fields of messages not stored (left by an ack racing a
	// store's drop), dropped by the next store.
	orphans []string
}

func (es *entries) get(id string) *entry {
	e := es.byID[id]
	if e == nil {
		e = &entry{id: id}
		es.byID[id] = e
	}
	return e
}

// parse reads a user's fields (name, value pairs).
func parse(fields map[string]string) *entries {
	es := &entries{byID: make(map[string]*entry, len(fields))}
	for f, v := range fields {
		ms, gw, err := unstamp(v)
		if err != nil || len(f) < 3 {
			es.orphans = append(es.orphans, f)
			continue
		}
		e := es.get(f[2:])
		switch f[:2] {
		case storedField:
			e.stored, e.storedOnline = ms, gw
		case ackedField:
			e.acked, e.ackedOver = ms, gw
		case readField:
			e.read, e.readOver = ms, gw
		case sentField:
			e.sent = ms
		default:
			es.orphans = append(es.orphans, f)
		}
	}
	for id, e := range es.byID {
		if e.stored == 0 {
			es.orphans = append(es.orphans, fieldsOf([]string{id}, laterFields)...)
			delete(es.byID, id)
		}
	}
	return es
}

// oldestFirst orders entries by the time given, then by when they were
// stored and by ID.
func oldestFirst(at func(*entry) int64) func(a, b *entry) int {
	return func(a, b *entry) int {
		return cmp.Or(cmp.Compare(at(a), at(b)), cmp.Compare(a.stored, b.stored), strings.Compare(a.id, b.id))
	}
}

func storedAt(e *entry) int64 { return e.stored }
func ackedAt(e *entry) int64  { return e.acked }
func readAt(e *entry) int64   { return e.read }

// tidy returns, of es at now, the messages a store drops: pending ones
// older than TTL and unread ones older than UnreadTTL, then the oldest of
// each state over Cap (reported, in that order), and read ones stored
// longer than TTL ago or over Cap (not reported: they left the inbox when
// they were read).
func (s *Store) tidy(es *entries, now int64) (reported, silent []string) {
	var pending, unread, read []*entry
	for _, e := range es.byID {
		switch {
		case e.pending():
			pending = append(pending, e)
		case e.unread():
			unread = append(unread, e)
		default:
			read = append(read, e)
		}
	}
	slices.SortFunc(pending, oldestFirst(storedAt))
	slices.SortFunc(unread, oldestFirst(ackedAt))
	slices.SortFunc(read, oldestFirst(readAt))
	var expired, over []string
	trim := func(list []*entry, since func(*entry) int64, ttl time.Duration, out *[]string) {
		live := list[:0]
		for _, e := range list {
			if since(e) <= now-ttl.Milliseconds() {
				*out = append(*out, e.id)
			} else {
				live = append(live, e)
			}
		}
		for _, e := range live[:max(0, len(live)-s.cfg.Cap)] {
			over = append(over, e.id)
		}
	}
	trim(pending, storedAt, s.cfg.TTL, &expired)
	trim(unread, ackedAt, s.cfg.UnreadTTL, &expired)
	reported, over = append(expired, over...), nil
	trim(read, storedAt, s.cfg.TTL, &silent)
	return reported, append(silent, over...)
}

// The fields a message may have besides storedField, and those an ack
// reads: when it was stored, acknowledged and read.
var (
	laterFields = []string{ackedField, readField, sentField}
	ackFields   = []string{storedField, ackedField, readField}
	allFields   = append([]string{storedField}, laterFields...)
)

// fieldsOf are the fields named by prefixes of the messages ids.
func fieldsOf(ids, prefixes []string) []string {
	out := make([]string, 0, len(prefixes)*len(ids))
	for _, id := range ids {
		for _, p := range prefixes {
			out = append(out, p+id)
		}
	}
	return out
}

// read loads the hashes of users (keys of the same index) in one
// pipelined round trip, with the reads also queues (if not nil).
func (s *Store) read(ctx context.Context, keys []string, also func(p redis.Pipeliner)) ([]*entries, error) {
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.HGetAll(ctx, k)
		}
		if also != nil {
			also(p)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	out := make([]*entries, len(keys))
	for i, c := range cmds {
		out[i] = parse(c.Val())
	}
	return out, nil
}

// Encode returns m as stored at now: the body a store writes and gateways
// send to clients.
func Encode(m Message, now time.Time) (json.RawMessage, error) {
	m.StoredAt = now.UTC()
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode message: %w", err)
	}
	return body, nil
}

// Item is one message to store for one user: its ID and its body, encoded
// by Encode.
type Item struct {
	User string
	ID   string
	Body json.RawMessage
}

// Added is a store prepared by Prepare: the writes to queue and the
// messages each item dropped.
type Added struct {
	s       *Store
	dropped [][]string
	// users: per user written, its key, the items it gets and the fields
	// it drops.
	users []userWrite
	// bodies to store, once per shard.
	bodies map[string][]byte
	// stored: per item, its write once Cmds queued it (nil: none).
	stored []*redis.BoolCmd
	// before: per item, its message's entry as Prepare found it stored
	// (nil: not stored).
	before []*entry
}

type userWrite struct {
	key  string
	add  []added
	drop []string
}

// added is one message a user gets: its ID and its item.
type added struct {
	id   string
	item int
}

// Prepare reads the inboxes of the items' users, all of app, in one
// pipelined round trip, with the reads also queues (if not nil: another
// package's, such as the users' presence), and returns the store of items:
// Cmds queues its writes, a few plain commands per user and one per message
// body and shard. Items whose user has the message already (pending, unread
// or read) store nothing.
func (s *Store) Prepare(ctx context.Context, app int64, items []Item, now time.Time, also func(p redis.Pipeliner)) (*Added, error) {
	a := &Added{s: s, dropped: make([][]string, len(items)), bodies: map[string][]byte{}, stored: make([]*redis.BoolCmd, len(items)),
		before: make([]*entry, len(items))}
	first := map[string]int{} // user → their first item
	var users []string
	for i, it := range items {
		if _, ok := first[it.User]; !ok {
			first[it.User] = i
			users = append(users, it.User)
		}
	}
	keys := make([]string, len(users))
	for i, u := range users {
		keys[i] = s.key(app, u)
	}
	read, err := s.read(ctx, keys, also)
	if err != nil {
		return nil, fmt.Errorf("read inboxes: %w", err)
	}
	at := map[string]*entries{}
	for i, u := range users {
		at[u] = read[i]
	}
	ms := now.UnixMilli()
	adds := map[string][]added{}
	for i, it := range items {
		es := at[it.User]
		if !valid(it.ID) {
			continue
		}
		if e, ok := es.byID[it.ID]; ok {
			if e.stored != 0 && !e.added {
				a.before[i] = e // read from Redis, not an item before this one
			}
			continue
		}
		es.byID[it.ID] = &entry{id: it.ID, stored: ms, added: true}
		adds[it.User] = append(adds[it.User], added{id: it.ID, item: i})
		if bk := s.bodyKey(app, it.User, it.ID); a.bodies[bk] == nil {
			a.bodies[bk] = it.Body
		}
	}
	for i, u := range users {
		es := at[u]
		reported, silent := s.tidy(es, ms)
		a.dropped[first[u]] = reported
		drop := slices.Concat(fieldsOf(reported, allFields), fieldsOf(silent, allFields), es.orphans)
		// A message stored and dropped at once (a cap of fewer than the
		// messages of one store) is not written at all.
		add := slices.DeleteFunc(adds[u], func(ad added) bool {
			return slices.Contains(reported, ad.id)
		})
		a.users = append(a.users, userWrite{key: keys[i], add: add, drop: drop})
	}
	return a, nil
}

// Cmds queues the store's writes on p. online tells, per item, whether
// its user was online when it was read (nil: none was): its message is
// stored as sent over the gateway, at once.
func (a *Added) Cmds(ctx context.Context, p redis.Pipeliner, now time.Time, online []bool) {
	ms := now.UnixMilli()
	keep := a.s.keep()
	for _, u := range a.users {
		for _, ad := range u.add {
			on := ad.item < len(online) && online[ad.item]
			a.stored[ad.item] = p.HSetNX(ctx, u.key, storedField+ad.id, stamp(ms, on))
		}
		if len(u.drop) > 0 {
			p.HDel(ctx, u.key, u.drop...)
		}
		if len(u.add) > 0 {
			p.PExpire(ctx, u.key, keep)
		} else {
			// Nothing new (a chunk stored again): a key an earlier try
			// created, then failed before its expiry, gets one.
			p.ExpireNX(ctx, u.key, keep)
		}
	}
	bkeep := a.s.cfg.TTL + a.s.cfg.UnreadTTL
	for k, b := range a.bodies {
		// SETNX answers false, not redis.Nil, for a body already stored,
		// so the pipeline's error is a real one.
		p.SetNX(ctx, k, b, bkeep)
		p.Do(ctx, "PEXPIRE", k, bkeep.Milliseconds(), "GT")
	}
}

// Dropped returns, per item, the IDs of messages that left the inbox
// unread because they were too old or over the cap.
func (a *Added) Dropped() [][]string { return a.dropped }

// Stored tells whether these writes stored item i's message (its first
// store: not one a try before made), once the pipeline ran. The states
// of a message are counted by the writer that set them, so a chunk stored
// twice counts its users once.
func (a *Added) Stored(i int) bool {
	c := a.stored[i]
	return c != nil && c.Err() == nil && c.Val()
}

// Before tells whether item i's message was stored already when Prepare
// read its user's inbox (an earlier try at the same chunk stored it), and
// if so whether it was stored as sent over the gateway and whether it was
// marked sent since (a replay, a late mark): what a try that finds the
// chunk stored counts again, once per chunk (status.Recorder.CountChunk).
func (a *Added) Before(i int) (stored, storedOnline, sent bool) {
	e := a.before[i]
	if e == nil {
		return false, false, false
	}
	return true, e.storedOnline, e.sent != 0
}

// Add stores m for user and returns the IDs it dropped, as Dropped does.
func (s *Store) Add(ctx context.Context, app int64, user string, m Message, now time.Time) ([]string, error) {
	body, err := Encode(m, now)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	a, err := s.Prepare(ctx, app, []Item{{User: user, ID: m.ID, Body: body}}, now, nil)
	if err != nil {
		return nil, fmt.Errorf("store message: %w", err)
	}
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		a.Cmds(ctx, p, now, nil)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("store message: %w", err)
	}
	return a.Dropped()[0], nil
}

// Contents is what a user's inbox holds.
type Contents struct {
	// Pending messages have not been pushed (acknowledged) yet.
	Pending []Message
	// Unread messages were pushed but not read.
	Unread []Message
}

// List returns the user's inbox, oldest first: the newest Cap of each
// state.
func (s *Store) List(ctx context.Context, app int64, user string, now time.Time) (Contents, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	fields, err := s.rdb.HGetAll(ctx, s.key(app, user)).Result()
	if err != nil {
		return Contents{}, fmt.Errorf("list inbox: %w", err)
	}
	es := parse(fields)
	ms := now.UnixMilli()
	var pending, unread []*entry
	for _, e := range es.byID {
		switch {
		case e.pending() && s.live(e, ms):
			pending = append(pending, e)
		case e.unread() && s.live(e, ms):
			unread = append(unread, e)
		}
	}
	slices.SortFunc(pending, oldestFirst(storedAt))
	slices.SortFunc(unread, oldestFirst(ackedAt))
	pending = pending[max(0, len(pending)-s.cfg.Cap):]
	unread = unread[max(0, len(unread)-s.cfg.Cap):]
	c := Contents{Pending: []Message{}, Unread: []Message{}}
	all := slices.Concat(pending, unread)
	if len(all) == 0 {
		return c, nil
	}
	keys := make([]string, len(all))
	for i, e := range all {
		keys[i] = s.bodyKey(app, user, e.id)
	}
	bodies, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return Contents{}, fmt.Errorf("list inbox: %w", err)
	}
	for i, e := range all {
		dst := &c.Pending
		if i >= len(pending) {
			dst = &c.Unread
		}
		b, ok := bodies[i].(string)
		if !ok {
			continue
		}
		var m Message
		if err := json.Unmarshal([]byte(b), &m); err != nil {
			return Contents{}, fmt.Errorf("decode message %s: %w", e.id, err)
		}
		*dst = append(*dst, m)
	}
	return c, nil
}

// Delivered moves ids (all pending messages if ids is empty) from pending
// to unread and returns the IDs it moved; IDs not pending are ignored.
func (s *Store) Delivered(ctx context.Context, app int64, user string, ids []string, now time.Time) ([]string, error) {
	return first(s.Apply(ctx, []Ack{{App: app, User: user, IDs: ids}}, now))
}

// first is the one ack's changes of Apply's answer, also those made
// before an error.
func first(changed [][]string, err error) ([]string, error) {
	if len(changed) == 0 {
		return nil, err
	}
	return changed[0], err
}

// Read applies read receipts at now: ids leave both sets. It returns the
// IDs that were in either, as Apply does.
func (s *Store) Read(ctx context.Context, app int64, user string, ids []string, now time.Time) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return first(s.Apply(ctx, []Ack{{App: app, User: user, IDs: ids, Read: true}}, now))
}

// Ack is a client's acknowledgement of some of a user's messages: delivered
// (they reached the client) or read. A delivery ack without IDs
// acknowledges every pending message; a read receipt without IDs does
// nothing.
type Ack struct {
	App  int64
	User string
	IDs  []string
	Read bool
	// Gateway is set for an ack the client sent over its socket, unset for
	// one through the API: the channel its state is shown on.
	Gateway bool
}

// Apply applies acks in two pipelined round trips whatever their number:
// the fields of the IDs they name are read (every field of a user whose
// delivery ack names none), then set. It returns, per ack, the IDs whose
// state changed (so that each transition is counted once); with an error
// from the writes, those of the writes that were made, which a retry
// would not report again. Messages no longer live (past their TTL) are
// not changed.
func (s *Store) Apply(ctx context.Context, acks []Ack, now time.Time) ([][]string, error) {
	if len(acks) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	type who struct {
		app  int64
		user string
	}
	type reading struct {
		key  string
		all  bool
		ids  []string
		seen map[string]bool
		es   *entries
		cmd  redis.Cmder
	}
	var order []who
	users := map[who]*reading{}
	for _, a := range acks {
		w := who{a.App, a.User}
		r := users[w]
		if r == nil {
			r = &reading{key: s.key(a.App, a.User), seen: map[string]bool{}}
			users[w] = r
			order = append(order, w)
		}
		if !a.Read && len(a.IDs) == 0 {
			r.all = true
		}
		for _, id := range a.IDs {
			if valid(id) && !r.seen[id] {
				r.seen[id] = true
				r.ids = append(r.ids, id)
			}
		}
	}
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, w := range order {
			r := users[w]
			switch {
			case r.all:
				r.cmd = p.HGetAll(ctx, r.key)
			case len(r.ids) > 0:
				r.cmd = p.HMGet(ctx, r.key, fieldsOf(r.ids, ackFields)...)
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("apply acknowledgements: %w", err)
	}
	for _, w := range order {
		r := users[w]
		fields := map[string]string{}
		switch c := r.cmd.(type) {
		case *redis.MapStringStringCmd:
			fields = c.Val()
		case *redis.SliceCmd:
			names := fieldsOf(r.ids, ackFields)
			for i, v := range c.Val() {
				if v, ok := v.(string); ok {
					fields[names[i]] = v
				}
			}
		}
		r.es = parse(fields)
	}
	// The acks are applied in order to what was read, then written: an
	// ID's change is reported by the ack that made it, and only if its
	// HSETNX set the field (no other writer did first).
	ms := now.UnixMilli()
	type change struct {
		ack int
		id  string
		cmd *redis.BoolCmd
	}
	var changes []change
	// Per key written, whether its expiry is extended.
	extend := map[string]bool{}
	touch := func(k string, longer bool) { extend[k] = extend[k] || longer }
	changed := make([][]string, len(acks))
	for i, a := range acks {
		es := users[who{a.App, a.User}].es
		changed[i] = []string{}
		ids := a.IDs
		if !a.Read && len(ids) == 0 {
			var all []*entry
			for _, e := range es.byID {
				if e.pending() && s.live(e, ms) {
					all = append(all, e)
				}
			}
			slices.SortFunc(all, oldestFirst(storedAt))
			for _, e := range all {
				ids = append(ids, e.id)
			}
		}
		for _, id := range ids {
			e := es.byID[id]
			switch {
			case e == nil || !valid(id) || !s.live(e, ms):
			case a.Read && e.read == 0:
				e.read = ms
				changes = append(changes, change{ack: i, id: id})
				touch(s.key(a.App, a.User), false)
			case !a.Read && e.pending():
				e.acked = ms
				changes = append(changes, change{ack: i, id: id})
				// The hash lives keep from its last store; an unread
				// message acknowledged late would outlive it.
				touch(s.key(a.App, a.User), e.stored <= ms-(s.keep()-s.cfg.UnreadTTL).Milliseconds())
			}
		}
	}
	if len(changes) == 0 {
		return changed, nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for j := range changes {
			c := &changes[j]
			a := acks[c.ack]
			f := ackedField
			if a.Read {
				f = readField
			}
			c.cmd = p.HSetNX(ctx, s.key(a.App, a.User), f+c.id, stamp(ms, a.Gateway))
		}
		for k, longer := range extend {
			if longer {
				p.PExpire(ctx, k, s.keep())
			} else {
				// The key has its expiry unless it vanished (expired, or
				// emptied by a store) since it was read and an HSETNX
				// above created it again: then it gets one.
				p.ExpireNX(ctx, k, s.keep())
			}
		}
		return nil
	})
	for _, c := range changes {
		if c.cmd.Err() == nil && c.cmd.Val() {
			changed[c.ack] = append(changed[c.ack], c.id)
		}
	}
	if err != nil {
		return changed, fmt.Errorf("apply acknowledgements: %w", err)
	}
	return changed, nil
}

// SentCmd queues on p the mark of user's message id as sent over a gateway
// at now, for a message stored while the user was offline: its answer is
// true for the first such mark.
func (s *Store) SentCmd(ctx context.Context, p redis.Pipeliner, app int64, user, id string, now time.Time) *redis.BoolCmd {
	return p.HSetNX(ctx, s.key(app, user), sentField+id, stamp(now.UnixMilli(), false))
}

// MarkSent marks user's messages ids, listed from the inbox, as sent over a
// gateway at now (a replay on connect), in one pipelined round trip, and
// returns those sent over a gateway for the first time: not stored while
// the user was online, nor replayed before.
func (s *Store) MarkSent(ctx context.Context, app int64, user string, ids []string, now time.Time) ([]string, error) {
	ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !valid(id) })
	if len(ids) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	k := s.key(app, user)
	fields := fieldsOf(ids, []string{storedField})
	var stored *redis.SliceCmd
	sets := make([]*redis.BoolCmd, len(ids))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		stored = p.HMGet(ctx, k, fields...)
		for i, id := range ids {
			sets[i] = s.SentCmd(ctx, p, app, user, id, now)
		}
		// The hash has its expiry unless it vanished since it was listed.
		p.ExpireNX(ctx, k, s.keep())
		return nil
	}); err != nil {
		return nil, fmt.Errorf("mark sent: %w", err)
	}
	var out []string
	for i, v := range stored.Val() {
		sv, ok := v.(string)
		if !ok || !sets[i].Val() {
			continue
		}
		if _, online, err := unstamp(sv); err == nil && !online {
			out = append(out, ids[i])
		}
	}
	return out, nil
}

// Mark is what a user's inbox keeps of one message's delivery: when it was
// stored, sent over a gateway, acknowledged and read (zero: not), and
// over which channel.
type Mark struct {
	ID     string
	Stored time.Time
	// StoredOnline: the user was online when it was stored; it was sent
	// over the gateway then (Sent is Stored).
	StoredOnline bool
	Sent         time.Time
	Acked, Read  time.Time
	// AckedOverGateway and ReadOverGateway: the ack or the read receipt
	// came over the user's socket, not through the API.
	AckedOverGateway, ReadOverGateway bool
}

// Marks returns what the user's inbox keeps of its messages' delivery,
// oldest stored first: at most about 3 × Cap messages (pending, unread and
// read ones), kept as long as the inbox keeps them.
func (s *Store) Marks(ctx context.Context, app int64, user string) ([]Mark, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	fields, err := s.rdb.HGetAll(ctx, s.key(app, user)).Result()
	if err != nil {
		return nil, fmt.Errorf("read inbox marks: %w", err)
	}
	es := parse(fields)
	list := make([]*entry, 0, len(es.byID))
	for _, e := range es.byID {
		list = append(list, e)
	}
	slices.SortFunc(list, oldestFirst(storedAt))
	at := func(ms int64) time.Time {
		if ms == 0 {
			return time.Time{}
		}
		return time.UnixMilli(ms).UTC()
	}
	out := make([]Mark, len(list))
	for i, e := range list {
		sent := e.sent
		if e.storedOnline {
			sent = e.stored
		}
		out[i] = Mark{ID: e.id, Stored: at(e.stored), StoredOnline: e.storedOnline, Sent: at(sent),
			Acked: at(e.acked), Read: at(e.read), AckedOverGateway: e.ackedOver, ReadOverGateway: e.readOver}
	}
	return out, nil
}
