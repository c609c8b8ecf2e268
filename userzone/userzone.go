// Package userzone is a user's own time zone: the locations Chime manages
// per app and zone ("tz:Asia/Jakarta"), which a user registered with a
// zone instead of a location is a subscriber of, and the marks that keep a
// user who moved zone from being reminded twice for one local date.
//
// A zone user is an ordinary subscriber of a managed location, so the
// index, the groups and the fire work for zone users as for any location:
// no task per user. The only thing a managed location adds is, per chunk,
// one pipelined read of the move marks of the reminder (Moves.Reminded).
//
// The rule for a move (re-registering with another zone): the user leaves
// the old zone's groups at once and joins the new zone's. A local date
// whose time passed in the old zone while the user was there (after the
// registration or the move that brought the user there, before the move
// away: the user was reminded there) is not delivered again in the new
// zone, where it may still be ahead. A local date whose time is still ahead
// in the old zone but already passed in the new one is caught up at the
// move: the new zone's latest occurrence, if finished and still valid, is
// sent to that user alone (a one-user occurrence, as a test send is), or,
// its validity over, the user is counted expired on it. Either is kept
// among the user's marks (Moves.RecordCatchUp), so that moving back, or in
// again, delivers that local date and time no second time. Only a move
// pays for it, never a fire.
package userzone

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chime-dev/chime/internal/rscript"
	"github.com/chime-dev/chime/keyspace"
	"github.com/chime-dev/chime/localtime"
)

// Prefix starts the name of every managed location. Location names an app
// gives are letters, digits, '_', '.' and '-' only, so no app can name, and
// so create or change, a location of this form.
const Prefix = "tz:"

// Location is the name of the managed location of zone.
func Location(zone string) string { return Prefix + zone }

// Zone returns the zone of a managed location's name, and false for any
// other location.
func Zone(location string) (string, bool) {
	z, ok := strings.CutPrefix(location, Prefix)
	return z, ok && z != ""
}

// MarkTTL is how long a move mark is kept: a move matters only to the local
// date being delivered around it, whose instants in any two zones are at
// most 26 hours apart.
const MarkTTL = 72 * time.Hour

// maxEntries bounds the moves kept per user, reminder and day.
const maxEntries = 8

// Move is a user of a reminder leaving a zone at an instant.
type Move struct {
	Reminder int64
	User     string
	From     string // the IANA zone left
	At       time.Time
	// Since is the earliest the user can have been in the zone left: the
	// subscription's creation (an earlier move's mark may tell a later one).
	Since time.Time
}

// Moves keeps the move marks in Redis: one hash per reminder and UTC date
// of the move, a field per user who moved into a managed zone that day,
// valued by the zones left, when, and since when the user can have been
// there ("Asia/Jakarta@1764550000000@1764500000000,..."), and by the
// catch-ups of the zones moved into (RecordCatchUp), at most 8 a day. It
// costs Redis only for users who moved, for MarkTTL.
type Moves struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewMoves returns the marks on rdb, under prefix (keyspace.DefaultPrefix
// if empty).
func NewMoves(rdb redis.UniversalClient, prefix string) *Moves {
	return &Moves{rdb: rdb, prefix: cmp.Or(prefix, keyspace.DefaultPrefix)}
}

// key is the hash of a reminder's moves on the UTC date of t. All of a
// reminder's marks share one hash tag, so a chunk's read is one slot.
func (m *Moves) key(reminder int64, t time.Time) string {
	return m.prefix + "{zm:" + strconv.FormatInt(reminder, 10) + "}:" + t.UTC().Format("20060102")
}

// appendScript adds an entry to a user's field, keeping the last few, and
// sets the hash's TTL. Running it twice adds the entry twice, which reads
// the same.
var appendScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
local e = ARGV[2]
if v then
  local parts = {}
  for p in string.gmatch(v, '[^,]+') do parts[#parts+1] = p end
  while #parts >= tonumber(ARGV[4]) do table.remove(parts, 1) end
  parts[#parts+1] = e
  e = table.concat(parts, ',')
end
redis.call('HSET', KEYS[1], ARGV[1], e)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// Record stores moves, in one pipelined round trip.
func (m *Moves) Record(ctx context.Context, moves []Move) error {
	if len(moves) == 0 {
		return nil
	}
	_, err := rscript.Pipelined(ctx, m.rdb, []*redis.Script{appendScript}, func(p redis.Pipeliner) {
		for _, mv := range moves {
			entry := mv.From + "@" + strconv.FormatInt(mv.At.UnixMilli(), 10) + "@" + strconv.FormatInt(mv.Since.UnixMilli(), 10)
			appendScript.EvalSha(ctx, p, []string{m.key(mv.Reminder, mv.At)}, mv.User, entry, MarkTTL.Milliseconds(), maxEntries)
		}
	})
	if err != nil {
		return fmt.Errorf("record zone moves: %w", err)
	}
	return nil
}

// CatchUp is a user who moved into a zone after its occurrence fired being
// sent that occurrence (of instant FireAt there) alone, at At; or, if
// Expired, counted expired on it, its validity having ended.
type CatchUp struct {
	Reminder int64
	User     string
	Zone     string // the IANA zone moved into
	FireAt   time.Time
	At       time.Time
	Expired  bool
}

// RecordCatchUp stores a catch-up as an entry among the user's move marks
// ("+Asia/Jakarta@<fire_at ms>@<at ms>", "-..." if expired), so that the
// same local date and time in any zone the user is in later is not
// delivered again, and the occurrence is not caught up or counted again.
// An entry of this form reads, to a reader that does not know it, as a
// mark it cannot read, which it skips.
func (m *Moves) RecordCatchUp(ctx context.Context, c CatchUp) error {
	sign := "+"
	if c.Expired {
		sign = "-"
	}
	entry := sign + c.Zone + "@" + strconv.FormatInt(c.FireAt.UnixMilli(), 10) + "@" + strconv.FormatInt(c.At.UnixMilli(), 10)
	err := appendScript.Run(ctx, m.rdb, []string{m.key(c.Reminder, c.At)}, c.User, entry, MarkTTL.Milliseconds(), maxEntries).Err()
	if err != nil {
		return fmt.Errorf("record zone catch-up: %w", err)
	}
	return nil
}

// Reminded returns which of users were already reminded for the local date
// and time that fireAt is in zone: in a zone they left, those who were in
// it at its instant of that date and time (after they joined it, by its
// subscription or an earlier move, and before they left it) and who left
// it before fireAt; or by a catch-up of that date and time in another zone.
// A user counted expired on the occurrence of fireAt in zone is returned
// too: that occurrence is settled for the user. One pipelined round trip (an HMGET of the
// reminder's marks of each UTC date a relevant move can fall on).
func (m *Moves) Reminded(ctx context.Context, reminder int64, zone string, fireAt time.Time, users []string) (map[string]bool, error) {
	return m.RemindedBy(ctx, reminder, zone, fireAt, fireAt, users)
}

// RemindedBy is Reminded for the users' moves up to until (at or after
// fireAt): which of users were reminded for the local date and time of
// fireAt in zone, in a zone they left by until or by a catch-up.
func (m *Moves) RemindedBy(ctx context.Context, reminder int64, zone string, fireAt, until time.Time, users []string) (map[string]bool, error) {
	loc, err := localtime.LoadZone(zone)
	if err != nil || len(users) == 0 {
		return nil, err
	}
	p := m.rdb.Pipeline()
	var cmds []*redis.SliceCmd
	// A move that matters falls between the old zone's instant, at most 26
	// hours before fireAt, and until.
	for d := until; !d.Before(fireAt.Add(-50 * time.Hour)); d = d.Add(-24 * time.Hour) {
		cmds = append(cmds, p.HMGet(ctx, m.key(reminder, d), users...))
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read zone moves: %w", err)
	}
	marks := map[int][]mark{}
	caught := map[int][]catchUp{}
	for _, c := range cmds {
		for i, v := range c.Val() {
			if s, ok := v.(string); ok {
				ms, cs := parseMarks(s)
				marks[i] = append(marks[i], ms...)
				caught[i] = append(caught[i], cs...)
			}
		}
	}
	wall := fireAt.In(loc)
	y, mo, day := wall.Date()
	of := localtime.Of(wall.Hour()*3600 + wall.Minute()*60 + wall.Second())
	var out map[string]bool
	remind := func(i int) {
		if out == nil {
			out = map[string]bool{}
		}
		out[users[i]] = true
	}
	for i, cs := range caught {
		for _, c := range cs {
			// A catch-up covers every instant of its local date and time
			// but its own send's; an expiry only its own occurrence.
			same := c.zone.String() == loc.String() && c.fireAt.Equal(fireAt)
			covers := !same && !c.expired && localtime.On(y, mo, day, of, c.zone).Equal(c.fireAt)
			if (covers || same && c.expired) && !c.at.After(until) {
				remind(i)
				break
			}
		}
	}
	for i, ms := range marks {
		slices.SortFunc(ms, func(a, b mark) int { return a.left.Compare(b.left) })
		var prev time.Time
		for _, mk := range ms {
			since := mk.since
			if prev.After(since) {
				since = prev // it moved into this zone then
			}
			prev = mk.left
			there := localtime.On(y, mo, day, of, mk.zone)
			if there.After(since) && !there.After(mk.left) && !mk.left.After(until) {
				remind(i)
				break
			}
		}
	}
	return out, nil
}

// catchUp is an occurrence a user was caught up on, or counted expired on.
type catchUp struct {
	zone       *time.Location
	fireAt, at time.Time
	expired    bool
}

// mark is one zone a user left.
type mark struct {
	zone        *time.Location
	left, since time.Time
}

// parseMarks reads a field's entries, the moves and the catch-ups,
// skipping any it cannot read.
func parseMarks(s string) ([]mark, []catchUp) {
	var out []mark
	var caught []catchUp
	for _, e := range strings.Split(s, ",") {
		sign := e[:min(1, len(e))]
		if sign == "+" || sign == "-" {
			e = e[1:]
		}
		parts := strings.Split(e, "@")
		if len(parts) != 3 {
			continue
		}
		zone, err := localtime.LoadZone(parts[0])
		a, err2 := strconv.ParseInt(parts[1], 10, 64)
		b, err3 := strconv.ParseInt(parts[2], 10, 64)
		if err != nil || err2 != nil || err3 != nil {
			continue
		}
		if sign == "+" || sign == "-" {
			caught = append(caught, catchUp{zone: zone, fireAt: time.UnixMilli(a), at: time.UnixMilli(b), expired: sign == "-"})
			continue
		}
		out = append(out, mark{zone: zone, left: time.UnixMilli(a), since: time.UnixMilli(b)})
	}
	return out, caught
}
