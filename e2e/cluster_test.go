package e2e

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/queue"
)

// The end-to-end fire on a 3-master Redis Cluster started on loopback:
// coordinator and workers use the cluster client (asynq's included), every
// Lua script and pipeline of Chime must touch one slot per command, and
// every user is delivered exactly once. Chime's keys end up on every master.
func TestFireOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	url := testenv.RedisCluster(t, 3)
	b := setup(t)
	b.cfg.RedisURL = url
	b.cfg.ChunkSize = 10 // checkpoints too
	b.startCoordinator("c1")
	b.startCoordinator("c2")
	b.startWorker("w1")
	b.startWorker("w2")

	b.fireOnce("cluster", 48, 11_000_000, 6000, fourZones[:3])

	// The cluster really is sharded and Chime's keys spread over it.
	rdb, err := chime.OpenRedis(context.Background(), url)
	require.NoError(t, err)
	defer rdb.Close()
	cc, ok := rdb.(*redis.ClusterClient)
	require.True(t, ok, "a redis+cluster:// URL opens a cluster client")
	masters := 0
	err = cc.ForEachMaster(context.Background(), func(ctx context.Context, n *redis.Client) error {
		keys, err := n.Keys(ctx, b.env.Prefix+"*").Result()
		if err != nil {
			return err
		}
		require.NotEmpty(t, keys, "no Chime key on master %s", n.Options().Addr)
		masters++
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, 3, masters)

	// asynq's queue metrics are read through the cluster client too.
	fams := scrape(t, b.apiURL+"/metrics")
	_, ok = sample(fams, "asynq_queue_size", map[string]string{"queue": b.env.Queue})
	require.True(t, ok, "asynq_queue_size of the queue")
}

// The group tasks of a fire spread over several asynq queues, each in a
// slot of its own, on the 3-master Redis Cluster started on loopback:
// CHIME_QUEUES=6 and groups of at most 40 users, so the fire makes some
// hundred tasks. Checked: every user is delivered exactly once, and the
// queues that processed tasks live on more than one master (all three,
// with the slots split evenly).
func TestGroupTasksSpreadOverClusterMasters(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	url := testenv.RedisCluster(t, 3)
	b := setup(t)
	b.cfg.RedisURL = url
	b.cfg.Queues = 6
	b.cfg.GroupSize = 40
	b.startCoordinator("c1")
	b.startWorker("w1")
	b.startWorker("w2")

	b.fireOnce("spread", 64, 12_000_000, 6000, fourZones[:3])

	ctx := context.Background()
	rdb, err := chime.OpenRedis(ctx, url)
	require.NoError(t, err)
	defer rdb.Close()
	cc := rdb.(*redis.ClusterClient)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	masters := map[string]int{}
	processed := 0
	for _, q := range queue.Names(b.env.Queue, 6) {
		info, err := insp.GetQueueInfo(q)
		if err != nil {
			continue // a queue no task went to
		}
		node, err := cc.MasterForKey(ctx, "asynq:{"+q+"}:pending")
		require.NoError(t, err)
		if info.ProcessedTotal > 0 {
			masters[node.Options().Addr] += info.ProcessedTotal
			processed += info.ProcessedTotal
		}
	}
	t.Logf("tasks processed per master: %v", masters)
	require.Greater(t, len(masters), 1, "the queues that carried tasks are on one master")
	require.Greater(t, processed, 100, "tasks processed")
}
