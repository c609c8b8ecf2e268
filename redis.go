package chime

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster URL schemes: REDIS_URL=redis+cluster://[:password@]host:port[?addr=host:port&addr=...]
// (or rediss+cluster:// for TLS) names a Redis Cluster by one or more seed
// nodes; the client learns the rest of the cluster from them.
const (
	clusterScheme    = "redis+cluster://"
	clusterTLSScheme = "rediss+cluster://"
)

// OpenRedis connects to the Redis named by url, a single server
// (redis://, rediss://) or a Redis Cluster (redis+cluster://,
// rediss+cluster://), and checks it answers.
//
// Every key Chime writes is hash-tagged so that each script and each
// transaction touches one cluster slot: a location's membership index
// shares the tag of its (reminder, location), a group's run, lease and ack
// stream share the tag of its ack shard, and asynq tags its keys by queue.
func OpenRedis(ctx context.Context, url string) (redis.UniversalClient, error) {
	rdb, err := newRedis(url, false)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("ping redis: %w", err)
	}
	return rdb, nil
}

// newRedis returns a client of the Redis named by url, without connecting.
// A probe client has one connection and makes one dial per command, with
// no retries of its own, for a caller that retries on its own schedule
// (await at start).
func newRedis(url string, probe bool) (redis.UniversalClient, error) {
	if rest, tls, ok := cutCluster(url); ok {
		scheme := "redis://"
		if tls {
			scheme = "rediss://"
		}
		opt, err := redis.ParseClusterURL(scheme + rest)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		opt.PoolSize = max(opt.PoolSize, 64)
		opt.ContextTimeoutEnabled = true
		if probe {
			opt.PoolSize, opt.MaxRetries, opt.DialerRetries = 1, -1, 1
		}
		return redis.NewClusterClient(opt), nil
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	opt.PoolSize = max(opt.PoolSize, 64)
	// Make every command honour its context's deadline, not only the
	// client's read and write timeouts.
	opt.ContextTimeoutEnabled = true
	if probe {
		opt.PoolSize, opt.MaxRetries, opt.DialerRetries = 1, -1, 1
	}
	return redis.NewClient(opt), nil
}

// redisLog passes go-redis's own messages (a pool that cannot dial, a
// cluster reloading its slots) to the process's log at warn, in its format
// (CHIME_LOG_FORMAT), instead of plain lines on stderr.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "), "component", "redis")
}

// cutCluster strips a cluster scheme from url.
func cutCluster(url string) (rest string, tls, ok bool) {
	if rest, ok := strings.CutPrefix(url, clusterScheme); ok {
		return rest, false, true
	}
	if rest, ok := strings.CutPrefix(url, clusterTLSScheme); ok {
		return rest, true, true
	}
	return "", false, false
}
