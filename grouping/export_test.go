package grouping

import "github.com/redis/go-redis/v9"

// SetBeforeMembers sets the commands a group's read queues between its
// reads of the layout and of the members.
func SetBeforeMembers(x *Index, f func(pipe redis.Pipeliner)) { x.beforeMembers = f }
