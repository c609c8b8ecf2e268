package scheduler

import (
	"context"
	"fmt"

	"github.com/chime-dev/chime/queue"
	"github.com/chime-dev/chime/store"
)

// releaseBatch bounds the held chunks released in one pass.
const releaseBatch = 1000

// ReleaseHolds releases the chunks held by quiet hours whose release
// instant has come (package policy): each becomes a group of its
// occurrence, numbered -hold ID, whose task names the chunk's users, sent
// through the same policy (opt-outs and caps are checked then). It runs
// every ReapInterval, which bounds how late after the quiet hours' end a
// held user is reminded. A release whose enqueue fails is a queued run
// without a task: the reaper enqueues it after QueueTimeout.
func (s *Scheduler) ReleaseHolds(ctx context.Context) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	now := s.clock.Now()
	due, err := store.DueQuietHolds(ctx, s.db, now, releaseBatch)
	if err != nil || len(due) == 0 {
		return err
	}
	var runs []store.GroupRun
	for _, h := range due {
		ok, err := store.ReleaseQuietHold(ctx, s.db, h, now)
		if err != nil {
			return err
		}
		if ok {
			runs = append(runs, store.GroupRun{OccurrenceID: h.OccurrenceID, GroupNo: int(-h.ID), Attempts: 1})
		}
	}
	if len(runs) == 0 {
		return nil
	}
	ps, err := s.payloads(ctx, runs)
	if err != nil {
		return fmt.Errorf("release quiet holds: %w", err)
	}
	s.log.Info("quiet holds released", "chunks", len(ps))
	return s.enq.Enqueue(ctx, queue.Single(ps))
}
