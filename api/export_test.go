package api

// BulkInProgress returns the bulk requests a is running, so that a test
// knows when a request it holds has its place.
func (a *API) BulkInProgress() int { return a.limit.inProgress() }
