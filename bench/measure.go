package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chime-dev/chime/internal/scratch"
)

// Point is one sample of cumulative deliveries.
type Point struct {
	Ms        float64 `json:"ms"` // since the fire instant
	Delivered int64   `json:"delivered"`
}

// sample records the count every 10ms until stop is closed.
func sample(at time.Time, count func() int64, stop <-chan struct{}) <-chan []Point {
	out := make(chan []Point, 1)
	go func() {
		var pts []Point
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				pts = append(pts, Point{Ms: ms(time.Since(at)), Delivered: count()})
				out <- pts
				return
			case now := <-t.C:
				if now.After(at.Add(-200 * time.Millisecond)) {
					pts = append(pts, Point{Ms: ms(now.Sub(at)), Delivered: count()})
				}
			}
		}
	}()
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// percentile returns the p-th percentile (0..100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// usedMemory returns Redis's used_memory in bytes.
func usedMemory(ctx context.Context, rdb redis.UniversalClient) int64 {
	return memoryField(ctx, rdb, "used_memory")
}

// lazyfreePending returns how many objects Redis still has to free in the
// background.
func lazyfreePending(ctx context.Context, rdb redis.UniversalClient) int64 {
	return memoryField(ctx, rdb, "lazyfree_pending_objects")
}

func memoryField(ctx context.Context, rdb redis.UniversalClient, field string) int64 {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// SetIntsetEntries sets Redis's set-max-intset-entries to n and returns a
// function that restores the previous value. Sets of integer-like IDs up to
// that size keep the compact intset encoding, so groups can be larger.
func SetIntsetEntries(ctx context.Context, redisURL string, n int) (func(), error) {
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, err
	}
	rdb := redis.NewClient(opt)
	old, err := rdb.ConfigGet(ctx, "set-max-intset-entries").Result()
	if err != nil {
		rdb.Close()
		return nil, fmt.Errorf("read set-max-intset-entries: %w", err)
	}
	if err := rdb.ConfigSet(ctx, "set-max-intset-entries", strconv.Itoa(n)).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("set set-max-intset-entries: %w", err)
	}
	return func() {
		rdb.ConfigSet(context.WithoutCancel(ctx), "set-max-intset-entries", old["set-max-intset-entries"])
		rdb.Close()
	}, nil
}

// cleanup deletes a run's keys and asynq queue.
func cleanup(ctx context.Context, rdb redis.UniversalClient, prefix, queue string) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if queue != "" {
		_ = asynq.NewInspectorFromRedisClient(rdb).DeleteQueue(queue, true)
	}
	scratch.CleanRedis(ctx, rdb, prefix, queue)
	// UNLINK frees memory in the background; wait for it so that the next
	// run's used_memory delta is its own.
	for ctx.Err() == nil && lazyfreePending(ctx, rdb) > 0 {
		time.Sleep(50 * time.Millisecond)
	}
}
