package chime

import (
	"context"
	"log/slog"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/deliveryevent"
)

// DeliveryEvents returns the delivery event recorder the configuration
// describes.
func (c Config) DeliveryEvents(rdb redis.UniversalClient, db *gorm.DB, clk clock.Clock, log *slog.Logger) *deliveryevent.Recorder {
	return deliveryevent.NewRecorder(deliveryevent.RecorderConfig{Prefix: c.Prefix, MaxAge: c.DeliveryEventsMaxAge, Clock: clk}, rdb, db, log.With("part", "delivery-events"))
}

// Opens returns the open counter the configuration describes, which records
// opened delivery events.
func (c Config) Opens(rdb redis.UniversalClient, db *gorm.DB, clk clock.Clock, log *slog.Logger) *deliveryevent.Opens {
	return deliveryevent.NewOpens(deliveryevent.OpensConfig{Prefix: c.Prefix}, rdb, db, c.DeliveryEvents(rdb, db, clk, log), log.With("part", "opens"))
}

// NewDeliveryEventDispatcher assembles the dispatcher that posts the apps'
// delivery events. Every worker runs one: the consumer group shares the
// streams' entries among them, so posting grows with the workers and no
// leader election stands between an event and its POST; a dead worker's
// entries are claimed by the others.
func NewDeliveryEventDispatcher(cfg Config, db *gorm.DB, rdb redis.UniversalClient, clk clock.Clock, log *slog.Logger) *deliveryevent.Dispatcher {
	return deliveryevent.NewDispatcher(deliveryevent.Config{
		Prefix: cfg.Prefix, Consumer: cfg.ReplicaID, MaxAge: cfg.DeliveryEventsMaxAge, ClaimIdle: cfg.DeliveryEventsClaimIdle, Guard: cfg.Push.guard(), Keyring: cfg.Keyring(), Clock: clk,
	}, rdb, db, log.With("component", "delivery-events"))
}

// Parts runs several long-running parts together: it returns when the
// first fails (cancelling the others) or when all have returned.
type Parts []interface{ Run(context.Context) error }

// Run runs every part until ctx is cancelled.
func (ps Parts) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, p := range ps {
		g.Go(func() error { return p.Run(ctx) })
	}
	return g.Wait()
}
