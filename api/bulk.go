package api

import (
	"fmt"
	"net/http"
	"sync"
)

// Bulk requests (POST /v1/reminders/{key}/subscribers and POST
// /v1/timetable) each hold a database connection for their writes and
// megabytes of memory for their rows. Without a bound, one app sending
// hundreds at once takes every connection of the pool and a gigabyte of
// memory, and slows every other app's requests on the replica. So each
// replica runs at most BulkPerApp of one app's bulk requests at once and
// BulkTotal in all, and answers the others at once, before reading their
// bodies, with Retry-After.
const (
	// DefaultBulkPerApp is how many bulk requests of one app a replica
	// runs at once.
	DefaultBulkPerApp = 2
	// DefaultBulkTotal is how many bulk requests a replica runs at once,
	// over all apps.
	DefaultBulkTotal = 8
	// bulkRetryAfter is the Retry-After, in seconds, of a refused bulk
	// request: about the time one 10,000-subscriber request takes.
	bulkRetryAfter = "1"
)

// bulkLimit counts the bulk requests in progress, by app.
type bulkLimit struct {
	perApp, total int

	mu   sync.Mutex
	apps map[int64]int
	n    int
}

func newBulkLimit(perApp, total int) *bulkLimit {
	return &bulkLimit{perApp: perApp, total: total, apps: map[int64]int{}}
}

// take reserves a place for one bulk request of app, or returns the
// problem to answer: 429 when the app has its share in progress, 503 when
// the replica has.
func (l *bulkLimit) take(app int64) (release func(), p *Problem) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.apps[app] >= l.perApp:
		return nil, problem(http.StatusTooManyRequests, fmt.Sprintf(
			"this app has %d bulk requests in progress on this server, the most it may; send the next when one is answered", l.perApp))
	case l.n >= l.total:
		return nil, problem(http.StatusServiceUnavailable, fmt.Sprintf(
			"this server has %d bulk requests in progress, the most it takes; try again shortly", l.total))
	}
	l.apps[app]++
	l.n++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.n--
		if l.apps[app]--; l.apps[app] == 0 {
			delete(l.apps, app)
		}
	}, nil
}

// inProgress returns the bulk requests in progress.
func (l *bulkLimit) inProgress() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// bulk runs h within the bulk limits.
func (a *API) bulk(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, app int64) error {
		release, p := a.limit.take(app)
		if p != nil {
			w.Header().Set("Retry-After", bulkRetryAfter)
			return p
		}
		defer release()
		return h(w, r, app)
	}
}
