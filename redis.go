package chime

import (
	"context"
	"fmt"
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
	var rdb redis.UniversalClient
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
		rdb = redis.NewClusterClient(opt)
	} else {
		opt, err := redis.ParseURL(url)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		opt.PoolSize = max(opt.PoolSize, 64)
		// Make every command honour its context's deadline, not only the
		// client's read and write timeouts.
		opt.ContextTimeoutEnabled = true
		rdb = redis.NewClient(opt)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("ping redis: %w", err)
	}
	return rdb, nil
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
