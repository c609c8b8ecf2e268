package webhook_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/sender"
	"github.com/chime-dev/chime/sender/webhook"
	"github.com/chime-dev/chime/sender/webhook/webhooktest"
)

// Injected: a receiver that answers 503 to every attempt, and takes two
// minutes doing so on the sender's clock (a fake clock the receiver moves),
// for a batch whose validity window ends one minute after the send starts.
// Checked, on that clock: the first attempt arrives inside the window and
// no attempt arrives after it (before, the three retries all came after
// it); the users are counted as expired, not left to a retry of the chunk.
// A batch already past its window makes no attempt at all.
func TestRetriesStopAtTheValidityWindow(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC))
	expires := clk.Now().Add(time.Minute)
	var mu sync.Mutex
	var arrived []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived = append(arrived, clk.Now())
		mu.Unlock()
		clk.Advance(2 * time.Minute)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	s, err := webhook.New(webhook.Config{URL: srv.URL, Retries: 3, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond,
		Now: clk.Now}, testenv.Logger(t))
	require.NoError(t, err)

	users := []string{"a", "b"}
	res, err := s.Send(context.Background(), &sender.Batch{Message: message.Message{Occurrence: 1, ExpiresAt: expires}, Users: users, IdempotencyKey: "1-0-a"})
	require.NoError(t, err, "an expired batch is an outcome, not an error to retry")
	require.Equal(t, sender.Result{Failed: 2, Expired: 2, FailedUsers: users}, res)
	mu.Lock()
	got := append([]time.Time(nil), arrived...)
	mu.Unlock()
	require.Len(t, got, 1, "one attempt: the next would start after the window")
	require.True(t, got[0].Before(expires))

	res, err = s.Send(context.Background(), &sender.Batch{Message: message.Message{Occurrence: 1, ExpiresAt: clk.Now()}, Users: users, IdempotencyKey: "1-0-a"})
	require.NoError(t, err)
	require.Equal(t, 2, res.Expired)
	mu.Lock()
	require.Len(t, arrived, 1, "no attempt for a batch past its window")
	mu.Unlock()
}

// Injected: a receiver that hangs (never answers; webhooktest.Staller), a
// per-attempt timeout of 3s with two retries, and a validity window that
// ends 500ms after the send starts. Checked against the receiver's own
// record of arrivals: one attempt, which arrived inside the window and was
// given up when the window ended (not before it, and not at its own
// timeout); no attempt arrived after the window (before, the retries
// arrived 3s and 6s later); the users are counted as expired.
func TestStalledAttemptEndsWithTheValidityWindow(t *testing.T) {
	st := webhooktest.NewStaller()
	t.Cleanup(st.Close)
	const timeout = 3 * time.Second
	s, err := webhook.New(webhook.Config{URL: st.URL(), Timeout: timeout, Retries: 2, RetryWaitMin: time.Millisecond,
		RetryWaitMax: time.Millisecond}, testenv.Logger(t))
	require.NoError(t, err)

	expires := time.Now().Add(500 * time.Millisecond)
	res, err := s.Send(context.Background(), &sender.Batch{Message: message.Message{Occurrence: 1, ExpiresAt: expires}, Users: []string{"a"}, IdempotencyKey: "1-0-a"})
	require.NoError(t, err)
	require.Equal(t, sender.Result{Failed: 1, Expired: 1, FailedUsers: []string{"a"}}, res)
	var arrived, gaveUp []time.Time
	testenv.WaitUntil(t, 5*time.Second, "the receiver to see the client give up", func() bool {
		arrived, gaveUp = st.Times()
		return len(gaveUp) == len(arrived)
	})
	require.Len(t, arrived, 1, "no retry after the window")
	require.True(t, arrived[0].Before(expires), "the attempt arrived inside the window")
	require.False(t, gaveUp[0].Before(expires), "the attempt ran until the window ended")
	require.True(t, gaveUp[0].Before(arrived[0].Add(timeout)), "the window, not the attempt's timeout, ended it")
}
