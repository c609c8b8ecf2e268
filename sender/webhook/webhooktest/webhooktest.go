// Package webhooktest is a webhook receiver for tests and benchmarks that
// checks every request's signature with the Standard Webhooks
// specification's own Go library
// (github.com/standard-webhooks/standard-webhooks/libraries/go), one secret
// per endpoint. Requests that fail verification get 401 and are counted.
// Errors are injected per endpoint with Fail and Gone.
package webhooktest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/chime-dev/chime/sender/webhook"
	"github.com/chime-dev/chime/signature"
)

// Fault is an error answer to inject.
type Fault struct {
	Status     int
	RetryAfter int // seconds, sent as Retry-After when positive
}

type endpoint struct {
	secret string
	wh     *standardwebhooks.Webhook
	faults []Fault
	gone   bool
	events []webhook.Event
}

// Receiver is a running receiver with named endpoints.
type Receiver struct {
	srv     *httptest.Server
	discard bool

	mu         sync.Mutex
	endpoints  map[string]*endpoint
	unverified int
	accepted   int
}

// New starts a receiver on a loopback port. With discard it keeps counts
// only (for benchmarks).
func New(discard bool) *Receiver {
	r := &Receiver{discard: discard, endpoints: map[string]*endpoint{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /e/{name}", r.serve)
	r.srv = httptest.NewServer(mux)
	return r
}

// Close stops the receiver.
func (r *Receiver) Close() { r.srv.Close() }

// Endpoint creates (or returns) the endpoint called name and returns its URL
// and its signing secret.
func (r *Receiver) Endpoint(name string) (url, secret string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.endpoints[name]
	if !ok {
		e = &endpoint{secret: signature.NewSecret()}
		wh, err := standardwebhooks.NewWebhook(e.secret)
		if err != nil {
			panic(err) // NewSecret always makes a valid secret
		}
		e.wh = wh
		r.endpoints[name] = e
	}
	return r.srv.URL + "/e/" + name, e.secret
}

// Fail makes the next len(faults) requests to endpoint name get faults.
func (r *Receiver) Fail(name string, faults ...Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endpoints[name].faults = append(r.endpoints[name].faults, faults...)
}

// Gone makes every later request to endpoint name get 410 Gone.
func (r *Receiver) Gone(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endpoints[name].gone = true
}

// Events returns the verified events endpoint name accepted.
func (r *Receiver) Events(name string) []webhook.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.endpoints[name]; e != nil {
		return append([]webhook.Event(nil), e.events...)
	}
	return nil
}

// Counts returns the requests accepted and those whose signature did not
// verify.
func (r *Receiver) Counts() (accepted, unverified int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accepted, r.unverified
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.endpoints[req.PathValue("name")]
	if e == nil {
		http.NotFound(w, req)
		return
	}
	if err := e.wh.Verify(body, req.Header); err != nil {
		r.unverified++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if e.gone {
		w.WriteHeader(http.StatusGone)
		return
	}
	if len(e.faults) > 0 {
		f := e.faults[0]
		e.faults = e.faults[1:]
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		w.WriteHeader(f.Status)
		return
	}
	var ev webhook.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.accepted++
	if !r.discard {
		e.events = append(e.events, ev)
	}
	w.WriteHeader(http.StatusNoContent)
}
