package scheduler

import (
	"context"
	"sync"
	"time"
)

// FirePass runs one pass of the firer and waits for the preparations it
// started.
func (s *Scheduler) FirePass(ctx context.Context) error {
	var wg sync.WaitGroup
	_, err := s.fireDue(ctx, &wg)
	wg.Wait()
	return err
}

// FireDue runs one pass of the firer, waits for the preparations it
// started, and returns when the firer would pass again.
func (s *Scheduler) FireDue(ctx context.Context) (time.Time, error) {
	var wg sync.WaitGroup
	wake, err := s.fireDue(ctx, &wg)
	wg.Wait()
	return wake, err
}
