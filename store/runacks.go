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
// per group: each statement joins the batch's rows, given as a derived
// table of SELECTs (MySQL and MariaDB both read it; neither shares a
// row-values syntax), with group_runs or occurrences on a unique key. The
// plan is pinned (STRAIGHT_JOIN from the derived table, FORCE INDEX on
// the key) so that every row is found, and locked, by its own key, as a
// statement per row did: a plan driven by the state index instead would
// take next-key locks over every run in flight and the gaps between them,
// which the firings of other occurrences wait for (see runs.go).
//
// SQLite (the embedded store, one writer at a time) has neither the
// multi-table UPDATE nor FOR UPDATE: there the rows are written a
// statement each, as before.

// perRow reports whether tx writes the rows of a batch a statement each.
func perRow(tx *gorm.DB) bool { return tx.Name() != "mysql" }

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
	row := "?" + strings.Repeat(", ?", len(cols)-1)
	for i := range rows {
		if i > 0 {
			b.WriteString(" UNION ALL SELECT " + row)
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
	if perRow(tx) {
		for _, a := range acks {
			if err := tx.Model(&GroupRun{}).Where("occurrence_id = ? AND group_no = ? AND state IN ?", a.Occurrence, a.Group,
				[]string{RunPending, RunQueued, RunStarted}).
				Updates(map[string]any{"state": RunStarted, "worker": a.Worker, "started_at": a.At}).Error; err != nil {
				return fmt.Errorf("mark run started: %w", err)
			}
		}
		return nil
	}
	for c := range slices.Chunk(acks, runsPerStatement) {
		v, args := derived([]string{"occ", "grp", "worker", "at"}, len(c), func(i int) []any {
			return []any{c[i].Occurrence, c[i].Group, c[i].Worker, c[i].At}
		})
		args = append(args, RunStarted, RunPending, RunQueued, RunStarted)
		if err := tx.Exec("UPDATE "+v+" v STRAIGHT_JOIN group_runs g FORCE INDEX (ux_group_run) ON g.occurrence_id = v.occ AND g.group_no = v.grp"+
			" SET g.state = ?, g.worker = v.worker, g.started_at = v.at WHERE g.state IN (?, ?, ?)", args...).Error; err != nil {
			return fmt.Errorf("mark runs started: %w", err)
		}
	}
	return nil
}

// ReleaseRuns marks the started runs of acks queued again at their
// instants (the worker gave the group back).
func ReleaseRuns(tx *gorm.DB, acks []RunAck) error {
	if perRow(tx) {
		for _, a := range acks {
			if err := tx.Model(&GroupRun{}).Where("occurrence_id = ? AND group_no = ? AND state = ?", a.Occurrence, a.Group, RunStarted).
				Updates(map[string]any{"state": RunQueued, "queued_at": a.At, "started_at": nil}).Error; err != nil {
				return fmt.Errorf("mark run queued again: %w", err)
			}
		}
		return nil
	}
	for c := range slices.Chunk(acks, runsPerStatement) {
		v, args := derived([]string{"occ", "grp", "at"}, len(c), func(i int) []any {
			return []any{c[i].Occurrence, c[i].Group, c[i].At}
		})
		args = append(args, RunQueued, RunStarted)
		if err := tx.Exec("UPDATE "+v+" v STRAIGHT_JOIN group_runs g FORCE INDEX (ux_group_run) ON g.occurrence_id = v.occ AND g.group_no = v.grp"+
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
	if perRow(tx) {
		return finishRunsEach(tx, fins)
	}
	var applied []RunFinish
	for c := range slices.Chunk(fins, runsPerStatement) {
		// The runs' states are read under lock and judged here, not in
		// the query, so that its plan has no state to range over.
		v, args := derived([]string{"occ", "grp"}, len(c), func(i int) []any { return []any{c[i].Occurrence, c[i].Group} })
		var found []GroupRun
		if err := tx.Raw("SELECT g.id, g.occurrence_id, g.group_no, g.state FROM "+v+
			" v STRAIGHT_JOIN group_runs g FORCE INDEX (ux_group_run) ON g.occurrence_id = v.occ AND g.group_no = v.grp FOR UPDATE", args...).
			Scan(&found).Error; err != nil {
			return nil, fmt.Errorf("find runs to finish: %w", err)
		}
		type key struct {
			occ int64
			grp int
		}
		ids := make(map[key]int64, len(found))
		for _, r := range found {
			if r.State != RunFinished && r.State != RunExpired {
				ids[key{r.OccurrenceID, r.GroupNo}] = r.ID
			}
		}
		if len(ids) == 0 {
			continue
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
		if err := tx.Exec("UPDATE "+v+" v STRAIGHT_JOIN group_runs g FORCE INDEX (PRIMARY) ON g.id = v.id SET g.state = v.state, g.worker = v.worker,"+
			" g.sent = v.sent, g.failed = v.failed, g.expired = v.expired, g.finished_at = v.at,"+
			" g.skipped_preference = v.pref, g.quiet = v.quiet, g.capped = v.capped,"+
			" g.started_at = COALESCE(v.started, g.started_at)", args...).Error; err != nil {
			return nil, fmt.Errorf("mark runs finished: %w", err)
		}
		applied = append(applied, todo...)
	}
	return applied, nil
}

// finishRunsEach is FinishRuns a statement per run.
func finishRunsEach(tx *gorm.DB, fins []RunFinish) ([]RunFinish, error) {
	var applied []RunFinish
	for _, f := range fins {
		state := RunFinished
		if f.Expired {
			state = RunExpired
		}
		fields := map[string]any{"state": state, "worker": f.Worker, "sent": f.Sent, "failed": f.Failed, "expired": f.Unsent,
			"finished_at": f.At, "skipped_preference": f.SkippedPreference, "quiet": f.Quiet, "capped": f.Capped}
		if f.StartedAt != nil {
			fields["started_at"] = *f.StartedAt
		}
		res := tx.Model(&GroupRun{}).Where("occurrence_id = ? AND group_no = ? AND state NOT IN ?", f.Occurrence, f.Group,
			[]string{RunFinished, RunExpired}).Updates(fields)
		if res.Error != nil {
			return nil, fmt.Errorf("mark run finished: %w", res.Error)
		}
		if res.RowsAffected == 1 {
			applied = append(applied, f)
		}
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
	if perRow(tx) {
		return addOccurrenceCountsEach(tx, counts)
	}
	for c := range slices.Chunk(counts, runsPerStatement) {
		v, args := derived([]string{"id", "grp", "delivered", "failed", "expired", "pref", "quiet", "capped"}, len(c), func(i int) []any {
			o := c[i]
			return []any{o.Occurrence, o.Groups, o.Delivered, o.Failed, o.Expired, o.SkippedPreference, o.Quiet, o.Capped}
		})
		if err := tx.Exec("UPDATE "+v+" v STRAIGHT_JOIN occurrences o FORCE INDEX (PRIMARY) ON o.id = v.id SET o.groups_done = o.groups_done + v.grp,"+
			" o.delivered = o.delivered + v.delivered, o.failed = o.failed + v.failed, o.expired = o.expired + v.expired,"+
			" o.skipped_preference = o.skipped_preference + v.pref, o.quiet = o.quiet + v.quiet, o.capped = o.capped + v.capped",
			args...).Error; err != nil {
			return fmt.Errorf("add occurrence counts: %w", err)
		}
		v, args = derived([]string{"id", "at"}, len(c), func(i int) []any { return []any{c[i].Occurrence, c[i].At} })
		args = append(args, OccDone, OccFiring)
		if err := tx.Exec("UPDATE "+v+" v STRAIGHT_JOIN occurrences o FORCE INDEX (PRIMARY) ON o.id = v.id SET o.state = ?, o.done_at = v.at"+
			" WHERE o.state = ? AND o.groups_done >= o.groups_total", args...).Error; err != nil {
			return fmt.Errorf("mark occurrences done: %w", err)
		}
	}
	return nil
}

// addOccurrenceCountsEach is AddOccurrenceCounts two statements per
// occurrence.
func addOccurrenceCountsEach(tx *gorm.DB, counts []OccurrenceCounts) error {
	for _, o := range counts {
		err := tx.Model(&Occurrence{}).Where("id = ?", o.Occurrence).Updates(map[string]any{
			"groups_done": gorm.Expr("groups_done + ?", o.Groups), "delivered": gorm.Expr("delivered + ?", o.Delivered),
			"failed": gorm.Expr("failed + ?", o.Failed), "expired": gorm.Expr("expired + ?", o.Expired),
			"skipped_preference": gorm.Expr("skipped_preference + ?", o.SkippedPreference),
			"quiet":              gorm.Expr("quiet + ?", o.Quiet), "capped": gorm.Expr("capped + ?", o.Capped),
		}).Error
		if err == nil {
			err = tx.Model(&Occurrence{}).Where("id = ? AND state = ? AND groups_done >= groups_total", o.Occurrence, OccFiring).
				Updates(map[string]any{"state": OccDone, "done_at": o.At}).Error
		}
		if err != nil {
			return fmt.Errorf("add counts of occurrence %d: %w", o.Occurrence, err)
		}
	}
	return nil
}
