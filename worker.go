package chime

import (
	"log/slog"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/ack"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/policy"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/userzone"
	"github.com/chime-dev/chime/worker"
)

// NewWorker assembles a worker that delivers through s.
func NewWorker(cfg Config, db *gorm.DB, rdb redis.UniversalClient, s sender.Sender, clk clock.Clock, log *slog.Logger) *worker.Worker {
	s = onlineSender(cfg, db, rdb, s, clk, log)
	index := grouping.NewIndex(rdb, db, cfg.Prefix)
	index.GroupSize = cfg.GroupSize // the layout of a rebuild
	return worker.New(worker.Config{
		ID: cfg.ReplicaID, Queue: cfg.Queue, Queues: cfg.Queues, Concurrency: cfg.Concurrency, ChunkSize: cfg.ChunkSize, LeaseTTL: cfg.LeaseTTL,
		ShutdownTimeout: cfg.ShutdownTimeout, Channel: cfg.Sender,
		Events: cfg.DeliveryEvents(rdb, db, clk, log),
		Zones:  userzone.NewMoves(rdb, cfg.Prefix),
		Policy: policy.New(policy.Config{Prefix: cfg.Prefix}, rdb, db),
	}, rdb, index, ack.NewTracker(rdb, cfg.Prefix), s, clk, log.With("component", "worker"))
}
