package scheduler

import (
	"cmp"
	"context"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/chime-dev/chime/ack"
	"github.com/chime-dev/chime/store"
)

// trackBatch bounds the acks recorded in one transaction: a fire of 5,000
// small locations sends about 10,000.
const trackBatch = 20000

// Track reads acks (waiting up to block for the first) and records them in
// MySQL in one transaction.
//
// Acks are written in batches because a fire of a million users produces
// thousands of them in a second, while workers are using the same CPUs: the
// tracker keeps a batch while acks keep coming (reading again TrackLinger
// after each read that found some, for at most TrackLingerMax), so that a
// fire's acks are mostly recorded once its deliveries are over, not
// among them; it keeps only the last word on each group (a finish makes
// its start redundant), and adds a batch's finished groups to each
// occurrence in one statement. A trickle of acks is recorded
// TrackLingerMax after its first at the latest.
func (s *Scheduler) Track(ctx context.Context, block time.Duration) error {
	acks, err := s.acks.Read(ctx, trackBatch, block)
	if err != nil {
		// Some shards may have been read: read them again from their
		// pending entries.
		s.acks.Rewind()
		return err
	}
	if len(acks) == 0 {
		return nil
	}
	if s.cfg.TrackLinger > 0 {
		until := s.clock.Now().Add(s.cfg.TrackLingerMax)
		for len(acks) < trackBatch && s.clock.Now().Before(until) {
			select {
			case <-ctx.Done():
				s.acks.Rewind()
				return nil
			case <-s.clock.After(min(s.cfg.TrackLinger, until.Sub(s.clock.Now()))):
			}
			more, err := s.acks.Read(ctx, int64(trackBatch-len(acks)), -1)
			if err != nil {
				s.acks.Rewind()
				return err
			}
			acks = append(acks, more...)
			if len(more) == 0 {
				break
			}
		}
	}
	tctx, cancel := withTimeout(ctx)
	defer cancel()
	err = store.Transaction(tctx, s.db, func(tx *gorm.DB) error { return s.record(tx, acks) })
	if err != nil {
		s.acks.Rewind()
		return err
	}
	return s.acks.Done(ctx, acks)
}

// record applies a batch of acks, keeping per group only what its last
// ack in stream order says and its start time: each kind written in runs'
// key order (store.StartRuns, ReleaseRuns, FinishRuns), then the finished
// groups' counts added to their occurrences in occurrence order.
func (s *Scheduler) record(tx *gorm.DB, acks []ack.Ack) error {
	last := make(map[ack.Group]int, len(acks))
	started := make(map[ack.Group]time.Time)
	for i, a := range acks {
		if a.Type == ack.TypeStart {
			started[a.Group] = a.At
		}
		if prev, ok := last[a.Group]; ok && acks[prev].Type == ack.TypeFinish {
			continue // a finish is final; a later copy of the task only repeats it
		}
		last[a.Group] = i
	}
	var starts, releases []store.RunAck
	var finishes []store.RunFinish
	for i, a := range acks {
		if last[a.Group] != i {
			continue
		}
		r := store.RunAck{Occurrence: a.Group.Occurrence, Group: a.Group.Group, Worker: a.Worker, At: a.At}
		switch a.Type {
		case ack.TypeStart:
			starts = append(starts, r)
		case ack.TypeRelease:
			releases = append(releases, r)
		case ack.TypeFinish:
			f := store.RunFinish{RunAck: r, Expired: a.State == ack.StateExpired, Sent: a.Sent, Failed: a.Failed, Unsent: a.Expired,
				SkippedPreference: a.Skips.Preference, Quiet: a.Skips.Quiet, Capped: a.Skips.Capped}
			if t, ok := started[a.Group]; ok {
				f.StartedAt = &t
			}
			finishes = append(finishes, f)
		}
	}
	// Runs too are written in key order, whatever the stream's.
	byRun := func(a, b store.RunAck) int {
		return cmp.Or(cmp.Compare(a.Occurrence, b.Occurrence), cmp.Compare(a.Group, b.Group))
	}
	slices.SortFunc(starts, byRun)
	slices.SortFunc(releases, byRun)
	slices.SortFunc(finishes, func(a, b store.RunFinish) int { return byRun(a.RunAck, b.RunAck) })
	if err := store.StartRuns(tx, starts); err != nil {
		return err
	}
	if err := store.ReleaseRuns(tx, releases); err != nil {
		return err
	}
	applied, err := store.FinishRuns(tx, finishes)
	if err != nil {
		return err
	}
	deltas := map[int64]*store.OccurrenceCounts{}
	for _, f := range applied {
		d := deltas[f.Occurrence]
		if d == nil {
			d = &store.OccurrenceCounts{Occurrence: f.Occurrence}
			deltas[f.Occurrence] = d
		}
		d.Groups++
		d.Delivered += int64(f.Sent)
		d.Failed += int64(f.Failed)
		d.Expired += int64(f.Unsent)
		d.SkippedPreference += int64(f.SkippedPreference)
		d.Quiet += int64(f.Quiet)
		d.Capped += int64(f.Capped)
		if f.At.After(d.At) {
			d.At = f.At
		}
	}
	rows := make([]store.OccurrenceCounts, 0, len(deltas))
	for _, d := range deltas {
		rows = append(rows, *d)
	}
	// In occurrence order: two batches that write the same occurrences
	// lock them in one order.
	slices.SortFunc(rows, func(a, b store.OccurrenceCounts) int { return cmp.Compare(a.Occurrence, b.Occurrence) })
	return store.AddOccurrenceCounts(tx, rows)
}
