package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/chime-dev/chime/store"
)

// TestSendsPerMinute bounds the test sends of one app on one server, with
// as many allowed at once: each is a real delivery to a real user, and a
// loop of them must not flood anyone.
const TestSendsPerMinute = 10

// minTestSendWindow is the least validity and grace a test send gets, so
// that a reminder with a short window can still be tried.
const minTestSendWindow = time.Minute

type testSendInput struct {
	UserID   string `json:"user_id"`
	Location string `json:"location"`
}

// testSendLimit holds a token bucket per app.
type testSendLimit struct {
	mu   sync.Mutex
	apps map[int64]*rate.Limiter
}

// take spends one test send of app at now, or returns how long until the
// next is allowed.
func (l *testSendLimit) take(app int64, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.apps == nil {
		l.apps = map[int64]*rate.Limiter{}
	}
	lim := l.apps[app]
	if lim == nil {
		lim = rate.NewLimiter(rate.Every(time.Minute/TestSendsPerMinute), TestSendsPerMinute)
		l.apps[app] = lim
	}
	res := lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// postTestSend sends a reminder to one subscribed user now, by the path a
// fire takes: an occurrence (marked as a test send, so not in the
// reminder's history) that the firer enqueues as a one-member group task
// for a worker to deliver. Its progress and per-channel results are the
// occurrence's routes.
func (a *API) postTestSend(w http.ResponseWriter, r *http.Request, app int64) error {
	rem, err := a.findReminder(r, app, r.PathValue("key"))
	if err != nil {
		return err
	}
	var in testSendInput
	if p := decode(w, r, 4096, &in); p != nil {
		return p
	}
	if in.UserID == "" {
		return problem(http.StatusUnprocessableEntity, "user_id (the user to send to) is required",
			FieldError{Field: "user_id", Message: "is required"})
	}
	if msg := validUserID(in.UserID); msg != "" {
		return problem(http.StatusUnprocessableEntity, "user_id is not a valid user ID", FieldError{Field: "user_id", Message: msg})
	}
	sub, err := store.FindSubscription(r.Context(), a.db, rem.ID, in.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return problem(http.StatusUnprocessableEntity, fmt.Sprintf("user %q is not subscribed to reminder %q; nothing was sent", in.UserID, rem.Key),
			FieldError{Field: "user_id", Message: "must be a subscriber of the reminder"})
	}
	if err != nil {
		return err
	}
	loc := sub.LocationID
	if in.Location != "" {
		l, err := store.FindLocation(r.Context(), a.db, app, in.Location)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		ok := err == nil
		if ok {
			if ok, err = store.HasReminderLocation(r.Context(), a.db, rem.ID, l.ID); err != nil {
				return err
			}
		}
		if !ok {
			return problem(http.StatusUnprocessableEntity, fmt.Sprintf("reminder %q does not fire at location %q", rem.Key, in.Location),
				FieldError{Field: "location", Message: "must be a location of the reminder, or empty for the user's own"})
		}
		loc = l.ID
	}
	now := a.cfg.Now().UTC()
	if wait, ok := a.testSends.take(app, now); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		return problem(http.StatusTooManyRequests, fmt.Sprintf("this app may make %d test sends a minute on this server; try again later", TestSendsPerMinute))
	}
	missAt := now.Add(max(rem.Grace(), minTestSendWindow))
	o, err := store.AddTestSend(r.Context(), a.db, store.Occurrence{
		ReminderID: rem.ID, LocationID: loc, FireAt: now, ExpiresAt: now.Add(max(rem.ValidFor(), minTestSendWindow)),
		MissAt: &missAt, State: store.OccScheduled, TestUser: in.UserID,
	})
	if err != nil {
		return err
	}
	// The leader plans again on an announcement and then looks for due
	// occurrences, which finds this one.
	a.announce(r.Context(), rem.Key)
	row, err := store.FindOccurrence(r.Context(), a.db, app, o.ID)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/occurrences/"+strconv.FormatInt(o.ID, 10))
	writeJSON(w, http.StatusAccepted, occurrences([]store.OccurrenceRow{row}, "")[0])
	return nil
}
