package store

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
)

// The ack tracker records a batch of a fire's acks (thousands a second
// when many small locations fire together) in a few statements, not one
// per group: each statement joins group_runs, on its unique key, with the
// batch's rows given as a derived table of SELECTs (MySQL and MariaDB
// both read it; neither shares a row-values syntax), so that every row is
// found, and locked, by its own key, as a statement per group did.

// RunAck is a worker's start or release ack of a group run.
type RunAck struct {
	Occurrence int64
	Group      int
	Worker     string
	At         time.Time
}

// RunFinish is a worker's finish ack of a group run.
type RunFinish struct {
	RunAck
	// Expired is set when the validity window passed before the group
	// finished: the run becomes RunExpired rather than RunFinished.
	Expired bool
	// The group's counts, as GroupRun's.
	Sent, Failed, Unsent             int
	SkippedPreference, Quiet, Capped int
	// StartedAt, if set, replaces the run's start (its start ack came in
	// the same batch).
	StartedAt *time.Time
}

// derived returns a derived table of rows (each with len(cols) values)
// named cols, and its arguments.
func derived(cols []string, rows int, value func(i int) []any) (string, []any) {
	var b strings.Builder
	args := make([]any, 0, rows*len(cols))
	b.WriteString("(SELECT ")
	for j, c := range cols {
		if j > 0 {
			b.WriteString(", ")
		}
		b.WriteString("? AS " + c)
	}
	one := ", ?" + strings.Repeat(", ?", len(cols)-1)
	for i := range rows {
		if i > 0 {
			b.WriteString(" UNION ALL SELECT ")
			b.WriteString(one[2:])
		}
		args = append(args, value(i)...)
	}
	b.WriteString(")")
	return b.String(), args
}

// StartRuns marks the runs of acks started by their workers at their
// instants, each unless it has finished or expired meanwhile. An ack of a
// run that is not there changes nothing.
func StartRuns(tx *gorm.DB, acks []RunAck) error {
	for c := range slices.Chunk(acks, runsPerStatement) {
		v, args := derived([]string{"occ", "grp", "worker", "at"}, len(c), func(i int) []any {
			return []any{c[i].Occurrence, c[i].Group, c[i].Worker, c[i].At}
		})
		args = append(args, RunStarted, RunPending, RunQueued, RunStarted)
		if err := tx.Exec("UPDATE group_runs g JOIN "+v+" v ON g.occurrence_id = v.occ AND g.group_no = v.grp"+
			" SET g.state = ?, g.worker = v.worker, g.started_at = v.at WHERE g.state IN (?, ?, ?)", args...).Error; err != nil {
			return fmt.Errorf("mark runs started: %w", err)
		}
	}
	return nil
}

// ReleaseRuns marks the started runs of acks queued again at their
// instants (the worker gave the group back).
func ReleaseRuns(tx *gorm.DB, acks []RunAck) error {
	for c := range slices.Chunk(acks, runsPerStatement) {
		v, args := derived([]string{"occ", "grp", "at"}, len(c), func(i int) []any {
			return []any{c[i].Occurrence, c[i].Group, c[i].At}
		})
		args = append(args, RunQueued, RunStarted)
		if err := tx.Exec("UPDATE group_runs g JOIN "+v+" v ON g.occurrence_id = v.occ AND g.group_no = v.grp"+
			" SET g.state = ?, g.queued_at = v.at, g.started_at = NULL WHERE g.state = ?", args...).Error; err != nil {
			return fmt.Errorf("mark runs queued again: %w", err)
		}
	}
	return nil
}

// FinishRuns marks the runs of fins finished (or expired) with their
// counts, each unless it has finished or expired already, and returns
// the fins it applied, in their order: those whose counts are the
// occurrence's to add. The runs are locked first (FOR UPDATE), so a run
// is applied, and counted, once whoever else records it.
func FinishRuns(tx *gorm.DB, fins []RunFinish) ([]RunFinish, error) {
	var applied []RunFinish
	for c := range slices.Chunk(fins, runsPerStatement) {
		v, args := derived([]string{"occ", "grp"}, len(c), func(i int) []any { return []any{c[i].Occurrence, c[i].Group} })
		args = append(args, RunFinished, RunExpired)
		var open []GroupRun
		if err := tx.Raw("SELECT g.id, g.occurrence_id, g.group_no FROM group_runs g JOIN "+v+
			" v ON g.occurrence_id = v.occ AND g.group_no = v.grp WHERE g.state NOT IN (?, ?) FOR UPDATE", args...).
			Scan(&open).Error; err != nil {
			return nil, fmt.Errorf("find runs to finish: %w", err)
		}
		if len(open) == 0 {
			continue
		}
		type key struct {
			occ int64
			grp int
		}
		ids := make(map[key]int64, len(open))
		for _, r := range open {
			ids[key{r.OccurrenceID, r.GroupNo}] = r.ID
		}
		var todo []RunFinish
		var todoIDs []int64
		for _, f := range c {
			if id, ok := ids[key{f.Occurrence, f.Group}]; ok {
				todo, todoIDs = append(todo, f), append(todoIDs, id)
				delete(ids, key{f.Occurrence, f.Group}) // a run named twice is applied once
			}
		}
		v, args = derived([]string{"id", "state", "worker", "sent", "failed", "expired", "at", "pref", "quiet", "capped", "started"},
			len(todo), func(i int) []any {
				f := todo[i]
				state := RunFinished
				if f.Expired {
					state = RunExpired
				}
				return []any{todoIDs[i], state, f.Worker, f.Sent, f.Failed, f.Unsent, f.At, f.SkippedPreference, f.Quiet, f.Capped, f.StartedAt}
			})
		if err := tx.Exec("UPDATE group_runs g JOIN "+v+" v ON g.id = v.id SET g.state = v.state, g.worker = v.worker,"+
			" g.sent = v.sent, g.failed = v.failed, g.expired = v.expired, g.finished_at = v.at,"+
			" g.skipped_preference = v.pref, g.quiet = v.quiet, g.capped = v.capped,"+
			" g.started_at = COALESCE(v.started, g.started_at)", args...).Error; err != nil {
			return nil, fmt.Errorf("mark runs finished: %w", err)
		}
		applied = append(applied, todo...)
	}
	return applied, nil
}

// OccurrenceCounts are counts of groups finished, to add to an
// occurrence's.
type OccurrenceCounts struct {
	Occurrence                       int64
	Groups                           int
	Delivered, Failed, Expired       int64
	SkippedPreference, Quiet, Capped int64
	// At is when the last of the groups finished: the occurrence's
	// done_at if these groups complete it.
	At time.Time
}

// AddOccurrenceCounts adds counts to their occurrences and marks done,
// at its At, each firing occurrence whose groups are then all done: two
// statements for up to runsPerStatement occurrences.
func AddOccurrenceCounts(tx *gorm.DB, counts []OccurrenceCounts) error {
	for c := range slices.Chunk(counts, runsPerStatement) {
		v, args := derived([]string{"id", "grp", "delivered", "failed", "expired", "pref", "quiet", "capped"}, len(c), func(i int) []any {
			o := c[i]
			return []any{o.Occurrence, o.Groups, o.Delivered, o.Failed, o.Expired, o.SkippedPreference, o.Quiet, o.Capped}
		})
		if err := tx.Exec("UPDATE occurrences o JOIN "+v+" v ON o.id = v.id SET o.groups_done = o.groups_done + v.grp,"+
			" o.delivered = o.delivered + v.delivered, o.failed = o.failed + v.failed, o.expired = o.expired + v.expired,"+
			" o.skipped_preference = o.skipped_preference + v.pref, o.quiet = o.quiet + v.quiet, o.capped = o.capped + v.capped",
			args...).Error; err != nil {
			return fmt.Errorf("add occurrence counts: %w", err)
		}
		v, args = derived([]string{"id", "at"}, len(c), func(i int) []any { return []any{c[i].Occurrence, c[i].At} })
		args = append(args, OccDone, OccFiring)
		if err := tx.Exec("UPDATE occurrences o JOIN "+v+" v ON o.id = v.id SET o.state = ?, o.done_at = v.at"+
			" WHERE o.state = ? AND o.groups_done >= o.groups_total", args...).Error; err != nil {
			return fmt.Errorf("mark occurrences done: %w", err)
		}
	}
	return nil
}
