// Package deliveryeventtest is a delivery events endpoint for tests and
// benchmarks: a real HTTP server on loopback that checks every POST's
// signature with the Standard Webhooks specification's own Go library and
// keeps the events it accepted, by ID. Faults are injected with Refuse (the
// POST is answered 503 unread) and LoseAnswers (the events are kept but the
// answer is 500, as when an answer is lost: the dispatcher posts them again).
package deliveryeventtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/chime-dev/chime/deliveryevent"
	"github.com/chime-dev/chime/signature"
)

// Receiver is a running endpoint.
type Receiver struct {
	srv    *httptest.Server
	secret string
	wh     *standardwebhooks.Webhook

	mu         sync.Mutex
	refuse     int
	lose       int
	events     map[string]deliveryevent.Event
	copies     map[string]int
	posts      int
	accepted   int
	unverified int
	mismatched int
	postIDs    map[string]int // webhook-id → POSTs
}

// New starts an endpoint with a fresh secret on a loopback port.
func New() *Receiver {
	r := &Receiver{secret: signature.NewSecret(), events: map[string]deliveryevent.Event{}, copies: map[string]int{},
		postIDs: map[string]int{}}
	wh, err := standardwebhooks.NewWebhook(r.secret)
	if err != nil {
		panic(err) // NewSecret always makes a valid secret
	}
	r.wh = wh
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

// URL is where the endpoint listens.
func (r *Receiver) URL() string { return r.srv.URL + "/events" }

// Secret is the endpoint's signing secret.
func (r *Receiver) Secret() string { return r.secret }

// Close stops the endpoint.
func (r *Receiver) Close() { r.srv.Close() }

// Refuse makes the next n POSTs get 503 without their events being kept.
func (r *Receiver) Refuse(n int) { r.mu.Lock(); r.refuse += n; r.mu.Unlock() }

// LoseAnswers makes the next n POSTs' events be kept and answered 500.
func (r *Receiver) LoseAnswers(n int) { r.mu.Lock(); r.lose += n; r.mu.Unlock() }

// Stats are what the endpoint saw.
type Stats struct {
	Posts      int // every POST
	Accepted   int // answered 2xx
	Distinct   int // events by ID
	Copies     int // events received again with an ID already kept
	Unverified int // POSTs whose signature did not verify (answered 401)
	// Mismatched counts events whose ID came with another type, user or
	// occurrence than its first copy.
	Mismatched int
	// RepostedIDs counts POSTs whose webhook-id had been posted before.
	RepostedIDs int
}

// Stats returns what the endpoint saw so far.
func (r *Receiver) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{Posts: r.posts, Accepted: r.accepted, Distinct: len(r.events), Unverified: r.unverified, Mismatched: r.mismatched}
	for _, n := range r.copies {
		s.Copies += n
	}
	for _, n := range r.postIDs {
		s.RepostedIDs += n - 1
	}
	return s
}

// Events returns the events kept, by ID.
func (r *Receiver) Events() map[string]deliveryevent.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]deliveryevent.Event, len(r.events))
	for id, e := range r.events {
		out[id] = e
	}
	return out
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 64<<20))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.posts++
	if r.refuse > 0 {
		r.refuse--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if err != nil || r.wh.Verify(body, req.Header) != nil {
		r.unverified++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var p deliveryevent.Payload
	if err := json.Unmarshal(body, &p); err != nil || p.Type != deliveryevent.PayloadType {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.postIDs[req.Header.Get("webhook-id")]++
	for _, e := range p.Data.Events {
		if first, ok := r.events[e.ID]; ok {
			r.copies[e.ID]++
			if first.Type != e.Type || first.User != e.User || first.Occurrence != e.Occurrence {
				r.mismatched++
			}
			continue
		}
		r.events[e.ID] = e
	}
	if r.lose > 0 {
		r.lose--
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	r.accepted++
	w.WriteHeader(http.StatusNoContent)
}
