package presence

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Each gateway instance reads its own Redis stream, P{gw:instance}:in, and
// delivers what workers publish there. A stream rather than pub/sub: a
// gateway whose Redis connection drops for a moment reads on from its last
// entry ID instead of losing what was published meanwhile, and the backlog
// is bounded (StreamMaxLen). The gateway creates its stream when it starts
// and keeps it alive with a TTL it refreshes with its heartbeat; publishing
// to a stream that does not exist (its gateway died and the stream expired)
// is a no-op, so nothing recreates the stream of a dead instance. Messages
// are never only in a stream: they are in the user's inbox until the client
// acknowledges them.

// StreamMaxLen bounds an instance's stream (approximately, MAXLEN ~).
const StreamMaxLen = 100000

// StreamKey is the stream of a gateway instance.
func StreamKey(prefix, instance string) string {
	return fmt.Sprintf("%s{gw:%s}:in", prefix, instance)
}

// Envelope is one stream entry: one message for some users of one app, all
// connected to the instance.
type Envelope struct {
	App     int64           `json:"a"`
	Users   []string        `json:"u"`
	Message json.RawMessage `json:"m"`
}

// PublishCmd queues publishing env to instance on p: one XADD NOMKSTREAM,
// which appends to the instance's stream only if it exists. Its answer is
// the entry's ID, or redis.Nil when there was no stream.
func PublishCmd(ctx context.Context, p redis.Pipeliner, prefix, instance string, env Envelope) (*redis.StringCmd, error) {
	b, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	return p.XAdd(ctx, &redis.XAddArgs{
		Stream: StreamKey(prefix, instance), NoMkStream: true, MaxLen: StreamMaxLen, Approx: true,
		Values: []any{"e", b},
	}), nil
}
