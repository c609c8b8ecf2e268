// Package queue defines the group task that the coordinator puts on the
// asynq queue and workers take from its head.
//
// A task carries everything a worker needs to deliver one group, so workers
// never read the reminder from MySQL: the occurrence, the group, the attempt
// and a snapshot of the message taken at the fire instant. Its task ID is
// deterministic (occurrence, group, attempt), so enqueueing the same group
// twice is a no-op while the first copy exists.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"

	"github.com/chime-dev/chime/message"
)

// TaskType is the asynq type name of a group task.
const TaskType = "chime:group"

// DefaultName is the asynq queue group tasks go to.
const DefaultName = "chime-groups"

// Payload is the body of a group task: the message, a snapshot taken at
// the fire instant, and where the worker finds the group's members.
type Payload struct {
	message.Message
	LocationID int64 `json:"l"`
	Attempt    int   `json:"a"`
	// Users, when set, are the group's members in place of the index's:
	// a test send names its one user.
	Users []string `json:"u,omitempty"`
}

// TaskID is the deterministic asynq task ID of p.
func (p Payload) TaskID() string {
	return fmt.Sprintf("o%d:g%d:a%d", p.Occurrence, p.Group, p.Attempt)
}

// Decode reads a task payload.
func Decode(b []byte) (Payload, error) {
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode group task: %w", err)
	}
	if p.Occurrence == 0 {
		return p, errors.New("decode group task: no occurrence")
	}
	return p, nil
}

// Enqueuer puts group tasks on the queue.
type Enqueuer struct {
	client *asynq.Client
	queue  string
	// MaxRetry is how often asynq retries a task whose handler failed. It is
	// large enough (with the worker's backoff capped at 30s, over a year)
	// that the validity window, not the retry count, ends a group: past it
	// the worker finishes the group as expired.
	MaxRetry int
	// Parallel is how many enqueues are in flight at once.
	Parallel int
}

// NewEnqueuer returns an enqueuer onto the named queue.
func NewEnqueuer(client *asynq.Client, queue string) *Enqueuer {
	if queue == "" {
		queue = DefaultName
	}
	return &Enqueuer{client: client, queue: queue, MaxRetry: 1 << 20, Parallel: 16}
}

// Enqueue puts every payload on the queue. A payload whose task already
// exists is not enqueued again. A failure to enqueue one payload does not
// stop the others; the failures are returned together.
func (e *Enqueuer) Enqueue(ctx context.Context, ps []Payload) error {
	var g errgroup.Group
	g.SetLimit(e.Parallel)
	var mu sync.Mutex
	var errs []error
	for _, p := range ps {
		g.Go(func() error {
			if err := e.enqueue(ctx, p); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d tasks not enqueued: %w", len(errs), len(ps), errors.Join(errs[:min(len(errs), 3)]...))
	}
	return nil
}

func (e *Enqueuer) enqueue(ctx context.Context, p Payload) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = e.client.EnqueueContext(ctx, asynq.NewTask(TaskType, b),
		asynq.TaskID(p.TaskID()), asynq.Queue(e.queue), asynq.MaxRetry(e.MaxRetry))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) && !errors.Is(err, asynq.ErrDuplicateTask) {
		return fmt.Errorf("enqueue %s: %w", p.TaskID(), err)
	}
	return nil
}
