package store

// The per-row forms of the tracker's batch writes (SQLite's), for the
// benchmark that compares them with the batches on MariaDB.
var (
	FinishRunsEach          = finishRunsEach
	AddOccurrenceCountsEach = addOccurrenceCountsEach
)
