// Package faults keeps the error answers a local provider server (see
// sender/apns/apnstest and sender/fcm/fcmtest) is told to give, per device
// token: a queue of faults for the token's next requests, after which they
// succeed again, and tokens unregistered for good. The fault type F is the
// server's own, since each provider writes its errors in its own shape.
package faults

import "sync"

// Tokens holds the faults injected per token. The zero value holds none and
// is safe for concurrent use.
type Tokens[F any] struct {
	mu     sync.Mutex
	queued map[string][]F
	gone   map[string]bool
}

// Fail makes the next len(faults) requests for token get faults, in order.
func (t *Tokens[F]) Fail(token string, faults ...F) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.queued == nil {
		t.queued = map[string][]F{}
	}
	t.queued[token] = append(t.queued[token], faults...)
}

// Unregister makes every later request for token get the unregistered
// answer Next is given.
func (t *Tokens[F]) Unregister(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone == nil {
		t.gone = map[string]bool{}
	}
	t.gone[token] = true
}

// Next returns the answer a request for token must get, and true: unregistered
// if the token is unregistered, else the first fault queued for it, which it
// takes off the queue. It returns false if the request is to succeed.
func (t *Tokens[F]) Next(token string, unregistered F) (F, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gone[token] {
		return unregistered, true
	}
	if q := t.queued[token]; len(q) > 0 {
		t.queued[token] = q[1:]
		return q[0], true
	}
	var none F
	return none, false
}
