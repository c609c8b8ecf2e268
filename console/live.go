package console

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/chime-dev/chime/store"
)

// Limits of the live view's event stream.
const (
	// DefaultLiveStreams is how many live views one session may stream
	// at once from one server; more are answered 429, and the page polls
	// instead.
	DefaultLiveStreams = 4
	// LiveStreamFor is how long one stream lasts; then the page polls
	// until its occurrence is done.
	LiveStreamFor = 10 * time.Minute
	// liveEvery is how often a stream reads its occurrence, as the
	// polling page does.
	liveEvery = time.Second
)

// streams counts the open live streams per session.
type streams struct {
	mu   sync.Mutex
	open map[string]int
}

// take reserves one of max streams for session, or reports false.
func (st *streams) take(session string, max int) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.open[session] >= max {
		return false
	}
	if st.open == nil {
		st.open = map[string]int{}
	}
	st.open[session]++
	return true
}

func (st *streams) release(session string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.open[session]--; st.open[session] <= 0 {
		delete(st.open, session)
	}
}

// occurrenceStream is the live view as server-sent events: the view's
// fragment (event "live") whenever it changes, then "done" once the
// occurrence is. It reads the occurrence every second, as polling does,
// and stops when the session ends, after LiveStreamFor, when the client
// goes, or when the server shuts down (EndStreams).
func (c *Console) occurrenceStream(w http.ResponseWriter, r *http.Request, s *session) error {
	if !c.streams.take(s.Hash, c.cfg.LiveStreams) {
		w.Header().Set("Retry-After", "10")
		c.fail(w, r, s, http.StatusTooManyRequests, "Too many live views are open in this session; this one polls instead.")
		return nil
	}
	defer c.streams.release(s.Hash)
	d, err := c.liveOf(r, s)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	// The server's write timeout bounds ordinary answers; a stream lasts
	// up to LiveStreamFor.
	if err := rc.SetWriteDeadline(time.Now().Add(LiveStreamFor + 10*time.Second)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ctx, cancel := context.WithTimeout(r.Context(), LiveStreamFor)
	defer cancel()
	r = r.WithContext(ctx)
	tick := time.NewTicker(liveEvery)
	defer tick.Stop()
	var last []byte
	for {
		var frag bytes.Buffer
		if err := c.pages.ExecuteTemplate(&frag, "live", d); err != nil {
			return nil // the answer has begun: nothing to report to the client
		}
		if !bytes.Equal(frag.Bytes(), last) {
			last = frag.Bytes()
			if !sendEvent(w, "live", frag.String()) {
				return nil
			}
		}
		if d.Done {
			sendEvent(w, "done", "")
			_ = rc.Flush()
			return nil
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.ending:
			return nil
		case <-tick.C:
		}
		// A session signed out or expired ends its streams.
		if _, err := c.session(r); errors.Is(err, store.ErrNotFound) {
			sendEvent(w, "signed-out", "")
			return nil
		}
		if d, err = c.liveOf(r, s); err != nil {
			return nil
		}
	}
}

// sendEvent writes one server-sent event, a line of data per line of
// text.
func sendEvent(w http.ResponseWriter, name, text string) bool {
	var b strings.Builder
	b.WriteString("event: " + name + "\n")
	for _, line := range strings.Split(text, "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteString("\n")
	_, err := w.Write([]byte(b.String()))
	return err == nil
}
