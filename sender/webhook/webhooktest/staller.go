package webhooktest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"
)

// Staller is a receiver that hangs: it never answers a request, and holds
// each one until its client gives up. It records when each request arrived
// and when its client gave up.
type Staller struct {
	srv *httptest.Server

	mu      sync.Mutex
	arrived []time.Time
	gaveUp  []time.Time
}

// NewStaller starts a staller on a loopback port.
func NewStaller() *Staller {
	s := &Staller{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.arrived = append(s.arrived, time.Now())
		s.mu.Unlock()
		// The server notices a client going away only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
		s.mu.Lock()
		s.gaveUp = append(s.gaveUp, time.Now())
		s.mu.Unlock()
	}))
	return s
}

// URL is where the staller listens.
func (s *Staller) URL() string { return s.srv.URL }

// Close stops the staller, dropping the requests it holds.
func (s *Staller) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Times returns when each request arrived and when the client of each
// request that ended gave up, in order.
func (s *Staller) Times() (arrived, gaveUp []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.arrived...), append([]time.Time(nil), s.gaveUp...)
}
