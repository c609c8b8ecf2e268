package bench

import (
	"context"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"
)

// ZipfSizes spreads users over n locations the way cities' populations
// spread: location k (from 1) gets top/k^1.5 plus an even share of the
// rest, with top a tenth of the users. For 1,000,000 users over 5,000
// locations the biggest holds about 100,000 and most about 150. The sizes
// add up to users exactly; each is at least 1 when users >= n.
func ZipfSizes(users, n int) []int {
	if n <= 0 {
		return nil
	}
	top := float64(users) / 10
	head := make([]float64, n)
	total := 0.0
	for k := range n {
		head[k] = top / math.Pow(float64(k+1), 1.5)
		total += head[k]
	}
	base := (float64(users) - total) / float64(n)
	sizes := make([]int, n)
	sum := 0
	for k := range n {
		sizes[k] = max(0, int(head[k]+base))
		sum += sizes[k]
	}
	// Rounding: the remainder goes to the locations in turn.
	for k := 0; sum != users; k = (k + 1) % n {
		if sum < users {
			sizes[k]++
			sum++
		} else if sizes[k] > 1 {
			sizes[k]--
			sum--
		}
	}
	return sizes
}

// bySizes returns the location of user i when locations hold sizes users,
// the first sizes[0] users in location 0 and so on.
func bySizes(sizes []int) func(i int) int {
	ends := make([]int, len(sizes))
	sum := 0
	for k, n := range sizes {
		sum += n
		ends[k] = sum
	}
	return func(i int) int { return sort.SearchInts(ends, i+1) }
}

// indexBytes sums MEMORY USAGE (SAMPLES 0: every element counted) of the
// membership index's keys under prefix.
func indexBytes(ctx context.Context, rdb redis.UniversalClient, prefix string) (int64, error) {
	var keys []string
	iter := rdb.Scan(ctx, 0, prefix+"idx:*", 10000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return 0, err
	}
	var total int64
	for len(keys) > 0 {
		part := keys[:min(len(keys), 1000)]
		keys = keys[len(part):]
		pipe := rdb.Pipeline()
		cmds := make([]*redis.IntCmd, len(part))
		for i, k := range part {
			cmds[i] = pipe.MemoryUsage(ctx, k, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return 0, err
		}
		for _, c := range cmds {
			total += c.Val()
		}
	}
	return total, nil
}

// databaseBytes returns the data and index size of the current database
// with fresh statistics.
func databaseBytes(ctx context.Context, db *gorm.DB) (int64, error) {
	db = db.WithContext(ctx)
	if err := db.Exec("ANALYZE TABLE subscriptions").Error; err != nil {
		return 0, err
	}
	var n int64
	err := db.Raw("SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.TABLES WHERE table_schema = DATABASE()").Scan(&n).Error
	return n, err
}

// processedTasks counts the tasks processed on every queue of the run: the
// queue named queue and any named after it (a queue spread over several).
// A task is counted when its handler returns, just after its last
// delivery, so the count is read until it stops moving (3s at most).
func processedTasks(ctx context.Context, rdb redis.UniversalClient, queue string) int64 {
	n := countProcessed(rdb, queue)
	for range 15 {
		select {
		case <-ctx.Done():
			return n
		case <-time.After(200 * time.Millisecond):
		}
		m := countProcessed(rdb, queue)
		if m == n {
			break
		}
		n = m
	}
	return n
}

func countProcessed(rdb redis.UniversalClient, queue string) int64 {
	in := asynq.NewInspectorFromRedisClient(rdb)
	names, err := in.Queues()
	if err != nil {
		return 0
	}
	var n int64
	for _, q := range names {
		if !strings.Contains(q, queue) {
			continue
		}
		if info, err := in.GetQueueInfo(q); err == nil {
			n += int64(info.ProcessedTotal)
		}
	}
	return n
}

// runName labels a run in the table.
func runName(r Result) string {
	switch {
	case r.Run != "":
		return r.Run
	case !strings.HasPrefix(r.System, "chime"):
		return "peer"
	}
	return "main"
}
