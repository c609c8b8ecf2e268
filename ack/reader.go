package ack

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Ack is one message of the ack stream.
type Ack struct {
	ID      string // stream entry ID
	Type    string // TypeStart, TypeFinish or TypeRelease
	Group   Group
	Attempt int
	Worker  string
	State   string // finish: StateFinished or StateExpired
	Sent    int
	Failed  int
	Expired int
	// Skips are the group's users the delivery policy did not send
	// (finish acks).
	Skips Skips
	At    time.Time
	Shard int // the stream (shard) it came from
}

// Reader reads the ack streams as the coordinator's consumer group. Entries
// stay pending until Done is called, so a coordinator that dies mid-batch
// leaves them for the next leader, which reads the pending entries first.
//
// Each shard's stream is read with a command of its own (streams of
// different shards live in different Redis Cluster slots), all in one
// pipeline.
type Reader struct {
	rdb      redis.UniversalClient
	streams  []string
	group    string
	consumer string
	// after is, per shard, where the next read of the entries already
	// delivered (and not yet done) goes on from: "0" for the first, the
	// last one's ID for the next, "" once none is left and only new
	// entries are read. Going on from the last one keeps a batch read in
	// several reads free of copies.
	after []string
	// Poll is how often Read looks again while it waits for acks. Defaults
	// to 50ms.
	Poll time.Duration
}

// NewReader returns a reader of t's streams.
func NewReader(t *Tracker) *Reader {
	// One consumer name for every coordinator: only the leader reads, and a
	// new leader must see what an old one left pending.
	r := &Reader{rdb: t.rdb, streams: t.StreamKeys(), group: "coordinator", consumer: "leader", Poll: 50 * time.Millisecond}
	r.after = make([]string, len(r.streams))
	r.Rewind()
	return r
}

// Read returns up to about count acks, waiting up to block for new ones (a
// negative block does not wait).
func (r *Reader) Read(ctx context.Context, count int64, block time.Duration) ([]Ack, error) {
	per := max(1, (count+int64(len(r.streams))-1)/int64(len(r.streams)))
	deadline := time.Now().Add(block)
	for {
		out, err := r.readOnce(ctx, per)
		if err != nil || len(out) > 0 || block <= 0 || !time.Now().Before(deadline) {
			return out, err
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(min(r.Poll, time.Until(deadline))):
		}
	}
}

func (r *Reader) readOnce(ctx context.Context, per int64) ([]Ack, error) {
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.XStreamSliceCmd, len(r.streams))
	for s, stream := range r.streams {
		id := ">"
		if r.after[s] != "" {
			id = r.after[s]
		}
		cmds[s] = pipe.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: r.group, Consumer: r.consumer, Streams: []string{stream, id}, Count: per, Block: -1,
		})
	}
	_, _ = pipe.Exec(ctx)
	var out []Ack
	for s, cmd := range cmds {
		res, err := cmd.Result()
		if errors.Is(err, redis.Nil) {
			err = nil
		}
		if err != nil && strings.HasPrefix(err.Error(), "NOGROUP") {
			// First start, or Redis lost the stream: create the group so it
			// sees everything already on the stream.
			if err := r.rdb.XGroupCreateMkStream(ctx, r.streams[s], r.group, "0").Err(); err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
				return nil, fmt.Errorf("create ack consumer group: %w", err)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read acks: %w", err)
		}
		last := ""
		for _, st := range res {
			for _, m := range st.Messages {
				a := parse(m)
				a.Shard = s
				out = append(out, a)
				last = m.ID
			}
		}
		if r.after[s] != "" {
			// Still reading what was delivered before: on from the last.
			r.after[s] = last
		}
	}
	return out, nil
}

// Done acknowledges and deletes handled entries.
func (r *Reader) Done(ctx context.Context, acks []Ack) error {
	if len(acks) == 0 {
		return nil
	}
	ids := make([][]string, len(r.streams))
	for _, a := range acks {
		ids[a.Shard] = append(ids[a.Shard], a.ID)
	}
	pipe := r.rdb.Pipeline()
	for s, l := range ids {
		if len(l) > 0 {
			pipe.XAck(ctx, r.streams[s], r.group, l...)
			pipe.XDel(ctx, r.streams[s], l...)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("ack stream entries: %w", err)
	}
	return nil
}

func parse(m redis.XMessage) Ack {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	num := func(k string) int { n, _ := strconv.Atoi(str(k)); return n }
	o, _ := strconv.ParseInt(str("o"), 10, 64)
	at, _ := strconv.ParseInt(str("at"), 10, 64)
	return Ack{
		ID: m.ID, Type: str("t"), Group: Group{Occurrence: o, Group: num("g")}, Attempt: num("a"),
		Worker: str("w"), State: str("s"), Sent: num("sent"), Failed: num("failed"), Expired: num("exp"),
		Skips: Skips{Preference: num("skp"), Quiet: num("qt"), Capped: num("cap")},
		At:    time.UnixMilli(at).UTC(),
	}
}

// Rewind makes the next Read start again from the entries still pending,
// after the caller failed to handle a batch.
func (r *Reader) Rewind() {
	for s := range r.after {
		r.after[s] = "0"
	}
}
