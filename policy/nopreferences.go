package policy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chime-dev/chime/keyspace"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/store"
)

// DefaultStateTTL is how long a finding that an app has no preferences
// (or has some) stands in Redis before a worker asks MySQL again.
const DefaultStateTTL = time.Minute

// Values of an app's preference state (keyspace.PreferenceState). Any
// other value is a generation, "g:" and random hex: set by every
// preference write, and by a worker about to ask MySQL when there was
// none.
const (
	stateNone = "none" // MySQL had no row of the app's
	stateSome = "some" // MySQL had some
)

// setStateScript records what MySQL said (ARGV[2]) for ARGV[3] ms, only
// if the state is still the generation read before MySQL was asked
// (ARGV[1]): a write since, or the key's loss, leaves it alone.
var setStateScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`)

func newGeneration() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "g:" + hex.EncodeToString(b[:])
}

// maxRemembered bounds the apps a process remembers having preferences;
// past it the expired are forgotten, and all if none was.
const maxRemembered = 10000

// remembered is the apps this process found having preferences, until
// when: for them the state is not read before each chunk. A stale entry
// only costs the decision script, which is always right.
type remembered struct {
	mu    sync.Mutex
	until map[int64]time.Time
}

func (r *remembered) has(app int64, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return now.Before(r.until[app])
}

func (r *remembered) add(app int64, now time.Time, ttl time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.until == nil {
		r.until = map[int64]time.Time{}
	}
	if len(r.until) >= maxRemembered {
		for a, t := range r.until {
			if !now.Before(t) {
				delete(r.until, a)
			}
		}
		if len(r.until) >= maxRemembered {
			clear(r.until)
		}
	}
	r.until[app] = now.Add(ttl)
}

// changed records that an app's preferences changed, once the change is
// in MySQL: a new generation ends a finding that the app has none, and
// keeps a worker that read the state before (and may have asked MySQL
// before the change) from recording one.
func (p *Policy) changed(ctx context.Context, app int64) error {
	if err := p.rdb.Set(ctx, keyspace.PreferenceState(p.cfg.Prefix, app), newGeneration(), p.cfg.StateTTL).Err(); err != nil {
		return fmt.Errorf("mark preferences changed: %w", err)
	}
	return nil
}

// A StateRead is an app's preference state read ahead of a chunk's
// decision (ReadState), in a round trip the worker makes anyway: its
// start ack, or the previous chunk's checkpoint.
type StateRead struct {
	app int64
	cmd *redis.StringCmd
}

// ReadState queues on pipe the read of the preference state of m's app
// that Decide would make for a chunk decided at now, and returns it for
// DecideWith; nil when Decide reads no state: a cap applies (the decision
// script runs anyway) or this process found the app having preferences
// within StateTTL. A write that returned before pipe ran is seen by the
// chunk decided with the read.
func (p *Policy) ReadState(ctx context.Context, pipe redis.Pipeliner, m message.Message, now time.Time) *StateRead {
	if capOf(m.Policy) > 0 {
		return nil
	}
	if p.some.has(m.App, now) {
		return nil
	}
	return &StateRead{app: m.App, cmd: pipe.Get(ctx, keyspace.PreferenceState(p.cfg.Prefix, m.App))}
}

// noPreferences reports whether app has no stored preferences as of the
// call (a write that returned before it is seen), or as of read, the
// state ReadState read for it, and the Redis round trips that took: none
// for an app this process found having some in the last StateTTL or whose
// state was read ahead, one to read the state, three when MySQL is asked.
func (p *Policy) noPreferences(ctx context.Context, app int64, now time.Time, read *StateRead) (bool, int, error) {
	var gen string
	var err error
	trips := 0
	switch {
	case read != nil && read.app == app:
		gen, err = read.cmd.Result()
	case p.some.has(app, now):
		return false, 0, nil
	default:
		trips++
		gen, err = p.rdb.Get(ctx, keyspace.PreferenceState(p.cfg.Prefix, app)).Result()
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, trips, fmt.Errorf("read preference state: %w", err)
	}
	key := keyspace.PreferenceState(p.cfg.Prefix, app)
	if gen == "" {
		// No state: start a generation (or take the one another worker
		// just started), so that the key's loss before the set below, like
		// a write, makes the set a no-op.
		trips++
		mine := newGeneration()
		old, err := p.rdb.SetArgs(ctx, key, mine, redis.SetArgs{Mode: "NX", Get: true, TTL: p.cfg.StateTTL}).Result()
		switch {
		case errors.Is(err, redis.Nil):
			gen = mine
		case err != nil:
			return false, trips, fmt.Errorf("start preference state: %w", err)
		default:
			gen = old
		}
	}
	switch gen {
	case stateNone:
		return true, trips, nil
	case stateSome:
		p.some.add(app, now, p.cfg.StateTTL)
		return false, trips, nil
	}
	p.hook("count")
	some, err := store.AppHasPreferences(ctx, p.db, app)
	if err != nil {
		return false, trips, err
	}
	state := stateNone
	if some {
		state = stateSome
		p.some.add(app, now, p.cfg.StateTTL)
	}
	p.hook("set")
	trips++
	if err := setStateScript.Run(ctx, p.rdb, []string{key}, gen, state, p.cfg.StateTTL.Milliseconds()).Err(); err != nil {
		return false, trips, fmt.Errorf("record preference state: %w", err)
	}
	// MySQL had no row after this chunk's decision began, so no write had
	// returned before it: the chunk needs no decision even if the set
	// found a write since.
	return !some, trips, nil
}

func (p *Policy) hook(step string) {
	if p.testHook != nil {
		p.testHook(step)
	}
}
