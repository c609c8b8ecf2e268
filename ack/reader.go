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
	At      time.Time
}

// Reader reads the ack stream as the coordinator's consumer group. Entries
// stay pending until Done is called, so a coordinator that dies mid-batch
// leaves them for the next leader, which reads the pending entries first.
type Reader struct {
	rdb      redis.UniversalClient
	stream   string
	group    string
	consumer string
	pending  bool
}

// NewReader returns a reader of t's stream.
func NewReader(t *Tracker) *Reader {
	// One consumer name for every coordinator: only the leader reads, and a
	// new leader must see what an old one left pending.
	return &Reader{rdb: t.rdb, stream: t.StreamKey(), group: "coordinator", consumer: "leader", pending: true}
}

// Read returns up to count acks, waiting up to block for new ones.
func (r *Reader) Read(ctx context.Context, count int64, block time.Duration) ([]Ack, error) {
	id := ">"
	if r.pending {
		id = "0"
	}
	res, err := r.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: r.group, Consumer: r.consumer, Streams: []string{r.stream, id}, Count: count, Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil && strings.HasPrefix(err.Error(), "NOGROUP") {
		// First start, or Redis lost the stream: create the group so it sees
		// everything already on the stream.
		if err := r.rdb.XGroupCreateMkStream(ctx, r.stream, r.group, "0").Err(); err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return nil, fmt.Errorf("create ack consumer group: %w", err)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read acks: %w", err)
	}
	var out []Ack
	for _, s := range res {
		for _, m := range s.Messages {
			out = append(out, parse(m))
		}
	}
	if r.pending && len(out) == 0 {
		r.pending = false
	}
	return out, nil
}

// Done acknowledges and deletes handled entries.
func (r *Reader) Done(ctx context.Context, acks []Ack) error {
	if len(acks) == 0 {
		return nil
	}
	ids := make([]string, len(acks))
	for i, a := range acks {
		ids[i] = a.ID
	}
	pipe := r.rdb.Pipeline()
	pipe.XAck(ctx, r.stream, r.group, ids...)
	pipe.XDel(ctx, r.stream, ids...)
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
		At: time.UnixMilli(at).UTC(),
	}
}

// Rewind makes the next Read start again from the entries still pending,
// after the caller failed to handle a batch.
func (r *Reader) Rewind() { r.pending = true }
