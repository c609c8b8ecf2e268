// Package sink is a webhook receiver that counts what it is sent: how many
// times each user was delivered and how many users each location got. The
// embedded demo delivers to it, and tests and benchmarks check exactly-once
// delivery at it.
package sink

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/chime-dev/chime/sender/webhook"
)

// Sink counts deliveries. Its zero value is not ready; use New.
type Sink struct {
	mu       sync.Mutex
	perUser  map[string]int
	perLoc   map[string]int
	perData  map[string]int // the event data of a batch, compacted -> users
	requests int
	first    time.Time
	last     time.Time
	// Delay is slept before answering each request, to stretch deliveries
	// out in tests that kill a worker mid-group.
	Delay time.Duration
}

// New returns an empty sink.
func New() *Sink {
	return &Sink{perUser: map[string]int{}, perLoc: map[string]int{}, perData: map[string]int{}}
}

// ServeHTTP receives one webhook batch.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var p webhook.Payload
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if s.Delay > 0 {
		time.Sleep(s.Delay)
	}
	now := time.Now()
	s.mu.Lock()
	s.requests++
	if s.first.IsZero() {
		s.first = now
	}
	s.last = now
	if len(p.Data) > 0 {
		s.perData[string(p.Data)] += len(p.Users)
	}
	for _, u := range p.Users {
		if s.perUser[u] == 0 {
			s.perLoc[p.Location]++
		}
		s.perUser[u]++
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// Stats is a snapshot of the counts.
type Stats struct {
	Requests   int            `json:"requests"`
	Users      int            `json:"users"`      // distinct users delivered
	Deliveries int            `json:"deliveries"` // deliveries, counting repeats
	Duplicates int            `json:"duplicates"` // deliveries beyond the first per user
	MaxPerUser int            `json:"max_per_user"`
	ByLocation map[string]int `json:"by_location"` // distinct users per location
	First      time.Time      `json:"first"`
	Last       time.Time      `json:"last"`
}

// Stats returns the counts so far.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Requests: s.requests, Users: len(s.perUser), ByLocation: map[string]int{}, First: s.first, Last: s.last}
	for _, n := range s.perUser {
		st.Deliveries += n
		st.Duplicates += n - 1
		st.MaxPerUser = max(st.MaxPerUser, n)
	}
	for k, v := range s.perLoc {
		st.ByLocation[k] = v
	}
	return st
}

// Count returns how many times user was delivered.
func (s *Sink) Count(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perUser[user]
}

// Data returns, per event data document received, how many users it was
// delivered with.
func (s *Sink) Data() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.perData))
	for k, v := range s.perData {
		out[k] = v
	}
	return out
}
