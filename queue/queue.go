// Package queue defines the group task that the coordinator puts on the
// asynq queue and workers take from its head.
//
// A task carries everything a worker needs to deliver its groups, so
// workers never read the reminder from MySQL: per group the occurrence, the
// group and the layout it belongs to, the attempt and a snapshot of the
// message taken at the fire instant. Most tasks carry one group; small
// groups due at the same instant (small locations) share a task (Pack), so
// thousands of small cities cost a few thousand queue entries, not one per
// city and group, and the message they share is carried once (wire.go).
// Acks, checkpoints and leases stay per group (package ack).
//
// Task IDs are deterministic, so enqueueing the same task twice is a no-op
// while the first copy exists: a group's is o<occurrence>:g<group>:a<attempt>,
// and a shared task's is its first group's followed by "+" and the number of
// other groups it carries ("o12:g0:a1+7").
package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"

	"github.com/chime-dev/chime/message"
)

// TaskType is the asynq type name of a group task, whose parts carry the
// message they share once (Encode).
const TaskType = "chime:groups"

// LegacyTaskType is the type of the group tasks queued before, each part
// carrying its whole message. Workers still take them, so tasks waiting in
// Redis across an upgrade are delivered. A worker from before TaskType
// does not take TaskType tasks (asynq retries them until a newer worker
// does), so workers are upgraded before coordinators (docs/operations.md).
const LegacyTaskType = "chime:group"

// DefaultName is the asynq queue group tasks go to.
const DefaultName = "chime-groups"

// Payload is the body of a group task: the message, a snapshot taken at
// the fire instant, and where the worker finds the group's members.
type Payload struct {
	message.Message
	LocationID int64 `json:"l"`
	// Layout is the group count of the location the group was prepared
	// with; the worker reads group Group of that layout, whatever the
	// location's layout is now. 0 in tasks queued before layouts.
	Layout  int `json:"n,omitempty"`
	Attempt int `json:"a"`
	// Users, when set, are the group's members in place of the index's:
	// a test send names its one user.
	Users []string `json:"u,omitempty"`
}

// TaskID is the deterministic asynq task ID of p.
func (p Payload) TaskID() string {
	return fmt.Sprintf("o%d:g%d:a%d", p.Occurrence, p.Group, p.Attempt)
}

// Task is one queue entry: one group, or several small ones.
type Task struct {
	Parts []Payload `json:"p"`
	// encoded is the task's form on the queue, when Pack built it; a
	// task from Pack is enqueued as it is, never modified.
	encoded []byte
}

// ID is the deterministic asynq task ID of t.
func (t Task) ID() string {
	if len(t.Parts) == 1 {
		return t.Parts[0].TaskID()
	}
	return t.Parts[0].TaskID() + "+" + strconv.Itoa(len(t.Parts)-1)
}

// Limits of a shared task.
const (
	// DefaultTaskParts is the most groups one task carries.
	DefaultTaskParts = 64
	// MaxTaskBytes bounds a shared task's form on the queue; a group
	// larger than that (long translations, event data) goes alone.
	MaxTaskBytes = 64 << 10
)

// Pack puts the groups ps, of sizes users each, into tasks: in order, each
// task takes groups while they add up to at most users users and parts
// groups (a larger group has a task of its own), and its form on the
// queue to at most MaxTaskBytes, which Pack builds as it goes. Groups are
// packed as they come, so callers list the groups of one instant together,
// those of one reminder next to each other (they share its message). The
// tasks are enqueued as they are: a change to their parts would not reach
// the form Pack built.
func Pack(ps []Payload, sizes []int, users, parts int) ([]Task, error) {
	var out []Task
	var cur Task
	var w writer // cur's form on the queue so far
	n := 0
	flush := func() {
		if len(cur.Parts) > 0 {
			cur.encoded = w.bytes()
			out = append(out, cur)
		}
		cur, n, w = Task{}, 0, writer{}
	}
	for i, p := range ps {
		if len(cur.Parts) > 0 {
			b, err := w.encode(p)
			if err != nil {
				return nil, err
			}
			if n+sizes[i] <= users && len(cur.Parts) < parts && w.sizeWith(b) <= MaxTaskBytes {
				cur.Parts = append(cur.Parts, p)
				n += sizes[i]
				w.add(b)
				continue
			}
			flush()
		}
		if err := w.start(p); err != nil {
			return nil, err
		}
		cur.Parts = append(cur.Parts, p)
		n = sizes[i]
	}
	flush()
	return out, nil
}

// Single returns one task per payload.
func Single(ps []Payload) []Task {
	out := make([]Task, len(ps))
	for i, p := range ps {
		out[i] = Task{Parts: []Payload{p}}
	}
	return out
}

// Enqueuer puts group tasks on the queue.
type Enqueuer struct {
	client *asynq.Client
	// Queues are the queues tasks spread over (see Names), each task to
	// the one its ID picks. Defaults to the queue NewEnqueuer is given.
	Queues []string
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
	return &Enqueuer{client: client, Queues: []string{queue}, MaxRetry: 1 << 20, Parallel: 16}
}

// Enqueue puts every task on the queue. A task that already exists is not
// enqueued again. A failure to enqueue one task does not stop the others;
// the failures are returned together.
func (e *Enqueuer) Enqueue(ctx context.Context, ts []Task) error {
	var g errgroup.Group
	g.SetLimit(e.Parallel)
	var mu sync.Mutex
	var errs []error
	for _, t := range ts {
		g.Go(func() error {
			if err := e.enqueue(ctx, t); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d tasks not enqueued: %w", len(errs), len(ts), errors.Join(errs[:min(len(errs), 3)]...))
	}
	return nil
}

func (e *Enqueuer) enqueue(ctx context.Context, t Task) error {
	b, err := Encode(t)
	if err != nil {
		return err
	}
	_, err = e.client.EnqueueContext(ctx, asynq.NewTask(TaskType, b),
		asynq.TaskID(t.ID()), asynq.Queue(pick(e.Queues, t.ID())), asynq.MaxRetry(e.MaxRetry))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) && !errors.Is(err, asynq.ErrDuplicateTask) {
		return fmt.Errorf("enqueue %s: %w", t.ID(), err)
	}
	return nil
}
