// Package ack is the protocol between workers and the coordinator for one
// group of one occurrence, kept in Redis.
//
// A worker that takes a group task calls Start: it takes the group's lease
// (one worker at a time holds a group, however many copies of its task
// exist), marks the run started and appends a start ack to the ack stream.
// After each chunk it sends it calls Checkpoint, which records the last user
// sent and the counts and renews the lease, but only while it still holds
// the lease. At the end it calls Finish, which appends the finish ack with
// the group's totals and frees the lease. A worker that cannot go on (the
// channel is down, members cannot be read) calls Release so the group is
// retried without waiting for the ack timeout.
//
// Each call is one Lua script, so the lease check, the run state and the ack
// are written together or not at all. The coordinator reads the stream with
// a consumer group (Reader) and records the acks in MySQL; the run hash lets a
// group that comes back after a crash resume at its checkpoint.
//
// # Shards and Redis Cluster
//
// The acks go to Shards streams (16), not one. A group's run hash, its
// lease and the stream its acks go to share one hash tag, the group's shard
// ("{prefix}ack:{s}:..."), so every script touches keys of one Redis Cluster
// slot, and the acks of a large fire spread over up to Shards slots instead
// of one hot stream. A group's shard is (occurrence*31 + group) mod Shards;
// every process must use the same Shards.
package ack

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chime-dev/chime/internal/rscript"
)

// Ack types on the stream.
const (
	TypeStart   = "start"
	TypeFinish  = "finish"
	TypeRelease = "release"
)

// Run states in the run hash.
const (
	StateStarted  = "started"
	StateQueued   = "queued"
	StateFinished = "finished"
	StateExpired  = "expired"
)

var (
	// ErrHeld is returned by Start when another worker holds the group.
	ErrHeld = errors.New("group is held by another worker")
	// ErrLeaseLost is returned when the caller no longer holds the group's
	// lease: it expired and another worker may have taken the group over.
	ErrLeaseLost = errors.New("group lease lost")
)

// DefaultShards is the number of ack streams.
const DefaultShards = 16

// Tracker writes a group's acks, checkpoints and lease.
type Tracker struct {
	rdb    redis.UniversalClient
	prefix string
	// RunTTL is how long a run's state is kept in Redis after its last write.
	RunTTL time.Duration
	// StreamMax bounds each ack stream (approximately).
	StreamMax int64
	// Shards is the number of ack streams; the same on every process.
	// Defaults to DefaultShards.
	Shards int
}

// NewTracker returns a tracker whose keys start with prefix.
func NewTracker(rdb redis.UniversalClient, prefix string) *Tracker {
	return &Tracker{rdb: rdb, prefix: prefix, RunTTL: 48 * time.Hour, StreamMax: 1_000_000, Shards: DefaultShards}
}

// shard returns the shard of g.
func (t *Tracker) shard(g Group) int {
	n := int64(max(t.Shards, 1))
	s := (g.Occurrence*31 + int64(g.Group)) % n
	if s < 0 {
		s += n
	}
	return int(s)
}

// tag is the key prefix, hash tag included, of shard s.
func (t *Tracker) tag(s int) string { return t.prefix + "ack:{" + strconv.Itoa(s) + "}:" }

// StreamKey is the key of the ack stream g's acks go to.
func (t *Tracker) StreamKey(g Group) string { return t.tag(t.shard(g)) + "stream" }

// StreamKeys are the keys of every ack stream, by shard.
func (t *Tracker) StreamKeys() []string {
	out := make([]string, max(t.Shards, 1))
	for s := range out {
		out[s] = t.tag(s) + "stream"
	}
	return out
}

func (t *Tracker) runKey(g Group) string {
	return t.tag(t.shard(g)) + "run:" + strconv.FormatInt(g.Occurrence, 10) + ":" + strconv.Itoa(g.Group)
}

// keys returns the run hash, lease and stream of g, which share a slot.
func (t *Tracker) keys(g Group) []string {
	run := t.runKey(g)
	return []string{run, run + ":lease", t.StreamKey(g)}
}

// Group names one group of one occurrence.
type Group struct {
	Occurrence int64
	Group      int
}

// Lease names one holder's hold on a group: the group, the attempt (the
// task's), the worker, and the token unique to this attempt of this worker
// that the lease is held under. Checkpoint and Renew need only the group and
// the token.
type Lease struct {
	Group   Group
	Attempt int
	Worker  string
	Token   string
}

// Claim is what Start found.
type Claim struct {
	// State is StateStarted when the caller now holds the group, or
	// StateFinished/StateExpired when the group was already done (its finish
	// ack has been sent again).
	State string
	// Checkpoint is the last user ID sent by an earlier holder, "" if none.
	Checkpoint string
	// Sent, Failed and Expired are the counts so far.
	Sent, Failed, Expired int
}

// Done reports whether the group needs no more work.
func (c Claim) Done() bool { return c.State == StateFinished || c.State == StateExpired }

var startScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'finished' or st == 'expired' then
  local r = redis.call('HMGET', KEYS[1], 'sent', 'failed', 'expired', 'worker', 'skp', 'quiet', 'capped')
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', 't', 'finish', 'o', ARGV[6], 'g', ARGV[7],
    'a', ARGV[3], 's', st, 'sent', r[1] or '0', 'failed', r[2] or '0', 'exp', r[3] or '0', 'w', r[4] or '', 'at', ARGV[5],
    'skp', r[5] or '0', 'qt', r[6] or '0', 'cap', r[7] or '0')
  return {st, '', r[1] or '0', r[2] or '0', r[3] or '0'}
end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[4]) then
  return {'held'}
end
redis.call('HSET', KEYS[1], 'state', 'started', 'worker', ARGV[2], 'attempt', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[9])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', 't', 'start', 'o', ARGV[6], 'g', ARGV[7],
  'a', ARGV[3], 'w', ARGV[2], 'at', ARGV[5])
local r = redis.call('HMGET', KEYS[1], 'cp', 'sent', 'failed', 'expired')
return {'started', r[1] or '', r[2] or '0', r[3] or '0', r[4] or '0'}
`)

// Start takes the lease of l.Group for l.Token and records the start ack. It returns ErrHeld if another holder has
// the lease.
func (t *Tracker) Start(ctx context.Context, l Lease, lease time.Duration, now time.Time) (Claim, error) {
	keys, args := t.startArgs(l, lease, now)
	return parseClaim(startScript.Run(ctx, t.rdb, keys, args...))
}

// A StartCmd is a start ack queued on a pipeline by QueueStart.
type StartCmd struct {
	t *Tracker
	c *rscript.Cmd
}

// QueueStart queues Start's script on pipe, so that a worker's start ack
// shares a round trip with its other reads (or the previous group's
// finish). Claim returns its result once pipe ran.
func (t *Tracker) QueueStart(ctx context.Context, pipe redis.Pipeliner, l Lease, lease time.Duration, now time.Time) *StartCmd {
	keys, args := t.startArgs(l, lease, now)
	return &StartCmd{t: t, c: rscript.Queue(ctx, pipe, startScript, keys, args...)}
}

// Claim is Start's result: what the start found, or ErrHeld.
func (c *StartCmd) Claim(ctx context.Context) (Claim, error) {
	return parseClaim(c.c.Result(ctx, c.t.rdb))
}

func (t *Tracker) startArgs(l Lease, lease time.Duration, now time.Time) ([]string, []any) {
	g := l.Group
	return t.keys(g), []any{l.Token, l.Worker, l.Attempt, lease.Milliseconds(), now.UnixMilli(),
		g.Occurrence, g.Group, t.StreamMax, int64(t.RunTTL / time.Second)}
}

func parseClaim(cmd *redis.Cmd) (Claim, error) {
	res, err := cmd.StringSlice()
	if err != nil {
		return Claim{}, fmt.Errorf("start ack: %w", err)
	}
	if res[0] == "held" {
		return Claim{}, ErrHeld
	}
	c := Claim{State: res[0], Checkpoint: res[1]}
	c.Sent, _ = strconv.Atoi(res[2])
	c.Failed, _ = strconv.Atoi(res[3])
	c.Expired, _ = strconv.Atoi(res[4])
	return c, nil
}

// addCountsLua defines add_counts(key, args...): HINCRBY of the run's count
// fields (sent, failed, expired, skp, quiet, capped) by the ARGV values at
// those indexes, skipping zeros. Most of a chunk's counts are 0, and a
// count field never written reads as 0 (every reader defaults it), so a
// chunk costs one or two calls instead of six.
const addCountsLua = `
local COUNT_FIELDS = {'sent', 'failed', 'expired', 'skp', 'quiet', 'capped'}
local function add_counts(key, ...)
  for i, at in ipairs({...}) do
    if ARGV[at] ~= '0' then redis.call('HINCRBY', key, COUNT_FIELDS[i], ARGV[at]) end
  end
end
`

var checkpointScript = redis.NewScript(addCountsLua + `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'cp', ARGV[2])
add_counts(KEYS[1], 3, 4, 6, 7, 8, 9)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
`)

// Skips count a chunk's or group's users the delivery policy did not send
// (package policy): opted out, quiet (dropped) and capped.
type Skips struct {
	Preference, Quiet, Capped int
}

// Checkpoint records that every user up to and including lastUser (in sorted
// order) has been handled, adds the chunk's counts (users sent, refused,
// not sent because the validity window would have passed first, and those
// the delivery policy did not send) and renews the lease.
func (t *Tracker) Checkpoint(ctx context.Context, l Lease, lastUser string, sent, failed, expired int, skips Skips, lease time.Duration) error {
	keys, args := t.checkpointArgs(l, lastUser, sent, failed, expired, skips, lease)
	return checkpointErr(checkpointScript.Run(ctx, t.rdb, keys, args...))
}

// A CheckpointCmd is a checkpoint queued on a pipeline by QueueCheckpoint.
type CheckpointCmd struct {
	t *Tracker
	c *rscript.Cmd
}

// QueueCheckpoint queues Checkpoint's script on pipe; Err returns its
// result once pipe ran.
func (t *Tracker) QueueCheckpoint(ctx context.Context, pipe redis.Pipeliner, l Lease, lastUser string, sent, failed, expired int, skips Skips, lease time.Duration) *CheckpointCmd {
	keys, args := t.checkpointArgs(l, lastUser, sent, failed, expired, skips, lease)
	return &CheckpointCmd{t: t, c: rscript.Queue(ctx, pipe, checkpointScript, keys, args...)}
}

// Err is Checkpoint's result: nil, ErrLeaseLost or the call's error.
func (c *CheckpointCmd) Err(ctx context.Context) error {
	return checkpointErr(c.c.Result(ctx, c.t.rdb))
}

func (t *Tracker) checkpointArgs(l Lease, lastUser string, sent, failed, expired int, skips Skips, lease time.Duration) ([]string, []any) {
	return t.keys(l.Group)[:2], []any{l.Token, lastUser, sent, failed, lease.Milliseconds(), expired,
		skips.Preference, skips.Quiet, skips.Capped}
}

func checkpointErr(cmd *redis.Cmd) error {
	ok, err := cmd.Int()
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if ok == 0 {
		return ErrLeaseLost
	}
	return nil
}

var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
`)

// Renew extends the lease l, or returns ErrLeaseLost.
// Workers renew while a send is in flight, so a slow channel does not let
// the lease run out under them.
func (t *Tracker) Renew(ctx context.Context, l Lease, lease time.Duration) error {
	ok, err := renewScript.Run(ctx, t.rdb, []string{t.runKey(l.Group) + ":lease"}, l.Token, lease.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	if ok == 0 {
		return ErrLeaseLost
	}
	return nil
}

var finishScript = redis.NewScript(addCountsLua + `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {'lost'} end
if ARGV[11] ~= '' then
  redis.call('HSET', KEYS[1], 'state', ARGV[2], 'cp', ARGV[11])
else
  redis.call('HSET', KEYS[1], 'state', ARGV[2])
end
add_counts(KEYS[1], 12, 13, 3, 14, 15, 16)
redis.call('EXPIRE', KEYS[1], ARGV[9])
local r = redis.call('HMGET', KEYS[1], 'sent', 'failed', 'expired', 'skp', 'quiet', 'capped')
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 't', 'finish', 'o', ARGV[4], 'g', ARGV[5],
  'a', ARGV[10], 's', ARGV[2], 'sent', r[1] or '0', 'failed', r[2] or '0', 'exp', r[3] or '0', 'w', ARGV[8], 'at', ARGV[6],
  'skp', r[4] or '0', 'qt', r[5] or '0', 'cap', r[6] or '0')
redis.call('DEL', KEYS[2])
return {'ok', r[1] or '0', r[2] or '0', r[3] or '0'}
`)

// Final is what a holder adds to a group's counts as it finishes it: the
// last chunk it sent (recorded with the finish instead of a checkpoint of
// its own, saving a round trip per group) and the users it counts as
// expired.
type Final struct {
	LastUser     string // the last user of the final chunk, "" if none
	Sent, Failed int    // the final chunk's counts
	Expired      int    // users not sent because the validity window passed
	Skips        Skips  // the final chunk's users the delivery policy did not send
}

// Finish marks l.Group finished (or expired), adds f to its counts, sends the
// finish ack with the group's totals and frees the lease.
func (t *Tracker) Finish(ctx context.Context, l Lease, state string, f Final, now time.Time) (Claim, error) {
	keys, args := t.finishArgs(l, state, f, now)
	return parseFinish(state, finishScript.Run(ctx, t.rdb, keys, args...))
}

// A FinishCmd is a finish queued on a pipeline by QueueFinish.
type FinishCmd struct {
	t     *Tracker
	state string
	c     *rscript.Cmd
}

// QueueFinish queues Finish's script on pipe, so that a group's finish
// shares a round trip with the start of the task's next group; Claim
// returns its result once pipe ran.
func (t *Tracker) QueueFinish(ctx context.Context, pipe redis.Pipeliner, l Lease, state string, f Final, now time.Time) *FinishCmd {
	keys, args := t.finishArgs(l, state, f, now)
	return &FinishCmd{t: t, state: state, c: rscript.Queue(ctx, pipe, finishScript, keys, args...)}
}

// Claim is Finish's result: the group's totals, or ErrLeaseLost.
func (c *FinishCmd) Claim(ctx context.Context) (Claim, error) {
	return parseFinish(c.state, c.c.Result(ctx, c.t.rdb))
}

func (t *Tracker) finishArgs(l Lease, state string, f Final, now time.Time) ([]string, []any) {
	g := l.Group
	return t.keys(g), []any{l.Token, state, f.Expired, g.Occurrence, g.Group, now.UnixMilli(),
		t.StreamMax, l.Worker, int64(t.RunTTL / time.Second), l.Attempt, f.LastUser, f.Sent, f.Failed,
		f.Skips.Preference, f.Skips.Quiet, f.Skips.Capped}
}

func parseFinish(state string, cmd *redis.Cmd) (Claim, error) {
	res, err := cmd.StringSlice()
	if err != nil {
		return Claim{}, fmt.Errorf("finish ack: %w", err)
	}
	if res[0] == "lost" {
		return Claim{}, ErrLeaseLost
	}
	c := Claim{State: state}
	c.Sent, _ = strconv.Atoi(res[1])
	c.Failed, _ = strconv.Atoi(res[2])
	c.Expired, _ = strconv.Atoi(res[3])
	return c, nil
}

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'queued')
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 't', 'release', 'o', ARGV[2], 'g', ARGV[3],
  'a', ARGV[7], 'w', ARGV[4], 'at', ARGV[5])
redis.call('DEL', KEYS[2])
return 1
`)

// Release frees the lease l without finishing it, so that a retry can
// take it, and tells the coordinator the group is waiting again.
func (t *Tracker) Release(ctx context.Context, l Lease, now time.Time) error {
	g := l.Group
	keys := t.keys(g)
	ok, err := releaseScript.Run(ctx, t.rdb, keys, l.Token, g.Occurrence, g.Group, l.Worker, now.UnixMilli(), t.StreamMax, l.Attempt).Int()
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if ok == 0 {
		return ErrLeaseLost
	}
	return nil
}
