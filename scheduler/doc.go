// Package scheduler is the coordinator's leader work: it turns reminder times
// into occurrences, fires them at their instant, records the acks workers send
// and puts back on the queue the groups whose finish ack does not come.
//
// # Planner
//
// Every PlanInterval, and at once when an API change is announced on Redis,
// the planner computes the fire instants of every reminder from now up to
// Horizon ahead, from its kind: daily local times, timetable rows (a local
// time per date), a one-off instant minus its offsets, or the events posted
// on a topic (package localtime applies the zone and its clock changes). It
// inserts them as occurrences in state scheduled; the unique key (reminder,
// location, fire instant, event) makes this idempotent. Scheduled
// occurrences nothing produces any more are canceled, and canceled ones
// wanted again are revived.
//
// Catch-up: a pass normally looks one grace window back. The planner keeps a
// mark of how far ahead it planned; after an outage it looks back to that
// mark (at most MaxCatchUp, never before the reminder time was created).
// Instants whose grace window is still open are scheduled and fire late;
// older ones are inserted as missed.
//
// # Firer
//
// The firer keeps its own timer on the earliest scheduled occurrence (not
// asynq's ProcessAt, which is checked on a 5-second tick). PrepareLead before
// the instant it prepares the occurrence: the membership index of the
// location is made ready in Redis, one group run per non-empty group is
// created in state pending, and the group tasks are built in memory.
// FireLead before the instant it loads the occurrences due at it and checks
// their layouts; at the instant it checks their reminders' edits and moves
// each occurrence from scheduled to firing with a
// compare-and-set in MySQL (only one coordinator can win it) and enqueues the
// tasks, each with a deterministic task ID; their runs stay pending, which
// for a firing occurrence means on the queue, and only runs of groups no
// longer in the layout are deleted.
// An occurrence found after its grace window is recorded as missed instead.
//
// A spread send's groups are planned at slots over the spread after the
// instant; the firer enqueues each at its slot, taking its run from pending
// to queued first, so a new leader enqueues the slots still pending and no
// others (spread.go).
//
// # Tracker
//
// Workers append start, finish and release acks to a Redis stream (package
// ack). The tracker reads it as a consumer group, records each ack on its
// group run, adds a finished group's counts to the occurrence and marks the
// occurrence done when its last group finishes. Entries are acknowledged only
// after the MySQL transaction commits, so a leader change loses none.
//
// # Reaper
//
// A group started more than AckTimeout ago without a finish ack goes back on
// the queue as its next attempt (a new task ID); the worker that takes it
// resumes at the checkpoint once the dead worker's lease has expired. A group
// queued for more than QueueTimeout without a start ack is enqueued again
// under the same task ID, which is a no-op if its task still exists and
// recovers it if Redis lost it.
package scheduler
