package grouping

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// SetBeforeMembers sets the commands a group's read queues between its
// reads of the layout and of the members.
func SetBeforeMembers(x *Index, f func(pipe redis.Pipeliner)) { x.beforeMembers = f }

// SetLockTTL sets the lifetime of x's rebuild locks.
func SetLockTTL(x *Index, d time.Duration) { x.lockTTL = d }

// Locked runs f under l's rebuild lock, as Regroup and rebuilds do.
func Locked(ctx context.Context, x *Index, l Loc, f func(token string) error) error {
	return x.locked(ctx, l, f)
}

// IntsetMembers decodes a set's DUMP payload, as a group's read does.
func IntsetMembers(payload string) ([]string, error) { return intsetMembers(payload) }

// ErrNotIntset is what IntsetMembers returns for anything but an intset.
var ErrNotIntset = errNotIntset
