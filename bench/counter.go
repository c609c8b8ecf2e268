package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chime-dev/chime/sender"
)

// Counter is the no-op sink: a Sender that only counts deliveries and
// records when each group (or, for the peer, each user) got its first one.
type Counter struct {
	delivered atomic.Int64
	mu        sync.Mutex
	first     map[int64]time.Time // group key -> first delivery
	last      atomic.Int64        // UnixNano of the latest delivery
}

var _ sender.Sender = (*Counter)(nil)

// NewCounter returns an empty counter.
func NewCounter() *Counter { return &Counter{first: map[int64]time.Time{}} }

// Send counts b's users.
func (c *Counter) Send(_ context.Context, b *sender.Batch) (sender.Result, error) {
	c.record(groupKey(b.Occurrence, b.Group), len(b.Users))
	return sender.Result{}, nil
}

func (c *Counter) record(key int64, n int) {
	now := time.Now()
	c.mu.Lock()
	if _, ok := c.first[key]; !ok {
		c.first[key] = now
	}
	c.mu.Unlock()
	c.delivered.Add(int64(n))
	c.last.Store(now.UnixNano())
}

// groupKey names one group of one occurrence (the peer's groups are single
// users, numbered below 2^20).
func groupKey(occurrence int64, group int) int64 { return occurrence<<20 | int64(group) }

// Delivered returns the deliveries so far.
func (c *Counter) Delivered() int64 { return c.delivered.Load() }

// Last returns the time of the latest delivery.
func (c *Counter) Last() time.Time { return time.Unix(0, c.last.Load()) }

// Lateness returns, per group, how long after at its first delivery came.
func (c *Counter) Lateness(at time.Time) []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Duration, 0, len(c.first))
	for _, t := range c.first {
		out = append(out, t.Sub(at))
	}
	return out
}
