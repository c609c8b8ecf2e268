package scheduler

import (
	"context"
	"sync"
)

// FirePass runs one pass of the firer and waits for the preparations it
// started.
func (s *Scheduler) FirePass(ctx context.Context) error {
	var wg sync.WaitGroup
	_, err := s.fireDue(ctx, &wg)
	wg.Wait()
	return err
}
