package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/metrics"
	"github.com/chime-dev/chime/presence"
	"github.com/chime-dev/chime/status"
	"github.com/chime-dev/chime/token"
)

// conn is one client connection. An open connection costs one goroutine,
// the one reading it (started by the handler, which then returns), and
// buffers of readBuffer and writeBuffer bytes: frames to the client wait in queue
// and are written by a goroutine that runs only while frames wait, pings
// are sent by the gateway's heartbeat and their pongs awaited by a
// goroutine of the same short life, and the close is a context.AfterFunc.
type conn struct {
	pc      presence.Conn
	kid     string    // the key that signed its token
	expires time.Time // its token's expiry
	ws      *websocket.Conn
	cancel  context.CancelCauseFunc
	limit   int // the most frames waiting

	mu      sync.Mutex
	queue   [][]byte
	writing bool // a writer owns the queue (or the replay on connect does)
	pinging atomic.Bool
}

// send queues a frame and starts a writer if none runs; a client too slow
// to take its queue is disconnected (what it missed stays in its inbox).
func (c *conn) send(frame []byte) {
	c.mu.Lock()
	if len(c.queue) >= c.limit {
		c.mu.Unlock()
		c.cancel(errTooSlow)
		return
	}
	c.queue = append(c.queue, frame)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.drain()
	}
}

// drain writes what waits, back to back, until nothing does. The queue's
// memory goes with each round, so an idle connection keeps none.
func (c *conn) drain() {
	for {
		c.mu.Lock()
		frames := c.queue
		c.queue = nil
		if len(frames) == 0 {
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		for _, f := range frames {
			if err := c.write(f); err != nil {
				// writing stays set: no writer starts on a broken connection.
				c.cancel(err)
				return
			}
		}
	}
}

// release hands the queue to writers once the replay on connect is done.
func (c *conn) release() {
	c.mu.Lock()
	start := len(c.queue) > 0
	c.writing = start
	c.mu.Unlock()
	if start {
		go c.drain()
	}
}

// ping sends a WebSocket ping and ends the connection if its pong does not
// come within timeout; a ping still waiting is not doubled.
func (c *conn) ping(timeout time.Duration) {
	if !c.pinging.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.pinging.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := c.ws.Ping(ctx); err != nil {
			c.cancel(errNoPong)
		}
	}()
}

var (
	errTooSlow      = errors.New("client too slow")
	errTokenExpired = errors.New("token expired")
	errKeyExpired   = errors.New("signing key expired")
	errNoPong       = errors.New("no pong")
)

// clientFrame is what clients send.
type clientFrame struct {
	Type string   `json:"type"`
	IDs  []string `json:"ids"`
}

func tokenOf(r *http.Request) string {
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return t
	}
	return r.URL.Query().Get("token")
}

// refuse answers a handshake with a problem document.
func refuse(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail,
	})
}

func (g *Gateway) serveWS(w http.ResponseWriter, r *http.Request) {
	now := g.clock.Now()
	// First the cheapest check, so that a flood costs no key lookups.
	if wait, ok := g.handshakes.allow(remoteAddr(r), now); !ok {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		refuse(w, http.StatusTooManyRequests, fmt.Sprintf("too many handshakes from this address (at most %d at once, %g per second); retry after %ds",
			g.cfg.HandshakeBurst, g.cfg.HandshakeRate, secs))
		metrics.GatewayRefused(metrics.RefusedRate)
		return
	}
	claims, err := token.Verify(r.Context(), g.keys, tokenOf(r), now, g.cfg.MaxTokenLifetime)
	if errors.Is(err, token.ErrKeysUnavailable) {
		g.log.Warn("look up signing key", "err", err)
		w.Header().Set("Retry-After", "5")
		refuse(w, http.StatusServiceUnavailable, token.ErrKeysUnavailable.Error())
		metrics.GatewayRefused(metrics.RefusedKeys)
		return
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="chime-gateway", error="invalid_token"`)
		refuse(w, http.StatusUnauthorized, err.Error())
		metrics.GatewayRefused(metrics.RefusedToken)
		return
	}
	k := userKey{claims.App, claims.Subject}
	if !g.admit(k) {
		refuse(w, http.StatusTooManyRequests, fmt.Sprintf("the user already has %d connections to this gateway, the most allowed; close one first", g.cfg.MaxConnsPerUser))
		metrics.GatewayRefused(metrics.RefusedUserLimit)
		return
	}
	ws, err := websocket.Accept(smallBuffers{w}, r, &websocket.AcceptOptions{
		// Clients authenticate with a token, never with cookies, so a page
		// of another origin gains nothing: any origin may connect.
		InsecureSkipVerify: true,
	})
	if err != nil {
		g.admitted(k, nil)
		metrics.GatewayRefused(metrics.RefusedUpgradeFail)
		return // Accept has answered
	}
	ws.SetReadLimit(64 << 10)
	g.connWG.Add(1)
	// The connection lives in a goroutine of its own and the handler
	// returns, so that net/http lets go of the request, its response and
	// its state of the connection (with the 4 KB buffers smallBuffers
	// replaced), and the handler's stack grown by the handshake.
	go g.serveConn(&conn{
		pc: presence.Conn{App: claims.App, User: claims.Subject, Instance: g.cfg.Instance, ID: newID()}, kid: claims.KeyID,
		expires: claims.ExpiresAt.Time, ws: ws, limit: g.cfg.SendQueue, writing: true,
	})
}

// serveConn runs an accepted connection until it closes: registers it,
// replays the user's inbox, then reads the client's frames.
func (g *Gateway) serveConn(c *conn) {
	defer g.connWG.Done()
	ws := c.ws
	ctx, cancel := context.WithCancelCause(g.base)
	c.cancel = cancel
	// Whatever ends the connection (the read failing, the heartbeat, a
	// full queue, shutdown) closes it here, with a status that says why.
	closed := make(chan struct{})
	context.AfterFunc(ctx, func() { defer close(closed); g.closeWS(ctx, c) })
	defer func() { cancel(nil); <-closed }()
	if err := g.open(ctx, c); err != nil {
		g.log.Warn("open connection", "app", c.pc.App, "user", c.pc.User, "conn", c.pc.ID, "err", err)
		ws.Close(websocket.StatusTryAgainLater, "presence unavailable; reconnect")
		metrics.GatewayRefused(metrics.RefusedPresence)
		return
	}
	defer g.closed(c)
	defer metrics.GatewayConnected()()
	c.release()
	g.readLoop(ctx, c)
	g.log.Debug("connection closed", "app", c.pc.App, "user", c.pc.User, "conn", c.pc.ID, "cause", context.Cause(ctx))
}

// The buffers an open connection keeps, in place of net/http's 4 KB
// reader and 4 KB writer: clients send small frames (acks, reads, pings;
// a larger frame is read through the buffer in parts), and a frame to the
// client up to writeBuffer bytes, most reminders, goes out in one write
// (a longer one in two).
const (
	readBuffer  = 512
	writeBuffer = 1 << 10
)

// smallBuffers is a ResponseWriter whose Hijack hands the connection over
// with buffers of readBuffer and writeBuffer bytes, keeping what net/http
// had already read from it.
type smallBuffers struct{ http.ResponseWriter }

func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	n := brw.Reader.Buffered()
	read, _ := brw.Reader.Peek(n)
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(read)), nc), max(readBuffer, n))
	if _, err := br.Peek(n); err != nil { // into br's buffer, where Accept looks for it
		nc.Close()
		return nil, nil, err
	}
	return nc, bufio.NewReadWriter(br, bufio.NewWriterSize(nc, writeBuffer)), nil
}

// open registers c (in memory, then in presence), then writes the messages
// waiting in the user's inbox and a welcome frame. A message published
// while this runs arrives through the stream or the replay, or both (the
// client drops the copy by ID); it cannot be missed, because workers store
// before they look up presence and the gateway registers before it reads.
func (g *Gateway) open(ctx context.Context, c *conn) error {
	g.admitted(userKey{c.pc.App, c.pc.User}, c)
	if err := g.register(ctx, c.pc); err != nil {
		g.forget(c)
		return err
	}
	waiting, err := g.inbox.List(ctx, c.pc.App, c.pc.User, g.clock.Now())
	if err != nil {
		g.closed(c)
		return err
	}
	pending := g.dropExpired(ctx, c, waiting.Pending)
	// Written here, before the write loop starts, so that a full inbox is
	// not limited by the send queue; what the stream brings meanwhile
	// waits in the queue.
	for _, m := range pending {
		raw, err := json.Marshal(m)
		if err != nil {
			continue
		}
		if err := c.write(messageFrame(raw)); err != nil {
			g.closed(c)
			return fmt.Errorf("replay: %w", err)
		}
	}
	g.recordReplay(ctx, c, pending)
	metrics.GatewayReplayed(len(pending))
	welcome, _ := json.Marshal(map[string]any{"type": "welcome", "conn": c.pc.ID, "instance": g.cfg.Instance,
		"replayed": len(pending)})
	if err := c.write(welcome); err != nil {
		g.closed(c)
		return fmt.Errorf("welcome: %w", err)
	}
	return nil
}

// dropExpired removes from the inbox the pending messages whose validity
// window has ended, records them as expired, and returns the others.
func (g *Gateway) dropExpired(ctx context.Context, c *conn, msgs []inbox.Message) []inbox.Message {
	now := g.clock.Now()
	var keep []inbox.Message
	var stale []string
	var entries []status.Entry
	for _, m := range msgs {
		if !m.Expired(now) {
			keep = append(keep, m)
			continue
		}
		stale = append(stale, m.ID)
		entries = append(entries, status.Entry{App: c.pc.App, User: c.pc.User, Message: m.ID, Occurrence: m.Occurrence, Channel: status.Inbox, State: status.Expired})
	}
	if len(stale) == 0 {
		return keep
	}
	if _, err := g.inbox.Read(ctx, c.pc.App, c.pc.User, stale, now); err != nil {
		g.log.Warn("drop expired messages", "err", err)
		return keep
	}
	if g.status != nil {
		if err := g.status.Record(ctx, entries, now); err != nil {
			g.log.Warn("record expired messages", "err", err)
		}
	}
	return keep
}

// recordReplay marks the replayed messages in the inbox as sent over the
// gateway, and counts those sent over one for the first time.
func (g *Gateway) recordReplay(ctx context.Context, c *conn, msgs []inbox.Message) {
	if len(msgs) == 0 {
		return
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	first, err := g.inbox.MarkSent(ctx, c.pc.App, c.pc.User, ids, g.clock.Now())
	if err != nil {
		g.log.Warn("record replay", "err", err)
		return
	}
	if g.status == nil {
		return
	}
	entries := make([]status.Entry, len(first))
	for i, id := range first {
		entries[i] = status.Entry{App: c.pc.App, User: c.pc.User, Message: id, Occurrence: inbox.OccurrenceOf(id), Channel: status.Gateway, State: status.Sent}
	}
	if err := g.status.Count(ctx, entries); err != nil {
		g.log.Warn("count replay", "err", err)
	}
}

// admit reserves one of the user's MaxConnsPerUser connections on this
// instance, if one is free; admitted turns the reservation into c, or
// releases it when c is nil.
func (g *Gateway) admit(k userKey) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.byUser[k])+g.opening[k] >= g.cfg.MaxConnsPerUser {
		return false
	}
	g.opening[k]++
	return true
}

func (g *Gateway) admitted(k userKey, c *conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.opening[k]--; g.opening[k] <= 0 {
		delete(g.opening, k)
	}
	if c == nil {
		return
	}
	g.byUser[k] = append(g.byUser[k], c)
}

func (g *Gateway) forget(c *conn) {
	k := userKey{c.pc.App, c.pc.User}
	g.mu.Lock()
	defer g.mu.Unlock()
	cs := slices.DeleteFunc(g.byUser[k], func(x *conn) bool { return x == c })
	g.byUser[k] = cs
	if len(cs) == 0 {
		delete(g.byUser, k)
	}
}

// closed removes c from memory and presence (its own entry only).
func (g *Gateway) closed(c *conn) {
	g.forget(c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.presence.Remove(ctx, c.pc); err != nil {
		// It expires with the presence TTL.
		g.log.Warn("remove presence", "err", err)
	}
}

// readLoop reads until the connection closes; the write loop closes it
// when ctx ends.
func (g *Gateway) readLoop(ctx context.Context, c *conn) {
	for {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.cancel(err)
			return
		}
		if typ != websocket.MessageText {
			continue
		}
		var f clientFrame
		if err := json.Unmarshal(data, &f); err != nil {
			c.reply(`{"type":"error","error":"frames are JSON objects: {\"type\":\"ack\"|\"read\",\"ids\":[...]}"}`)
			continue
		}
		switch f.Type {
		case "ack", "read":
			if len(f.IDs) == 0 || len(f.IDs) > 1000 {
				c.reply(`{"type":"error","error":"ids must hold 1 to 1000 message IDs"}`)
				continue
			}
			metrics.GatewayAcked(f.Type == "read", len(f.IDs))
			select {
			case g.acks <- inbox.Ack{App: c.pc.App, User: c.pc.User, IDs: f.IDs, Read: f.Type == "read", Gateway: true}:
			case <-ctx.Done():
				return
			}
		case "ping":
			c.reply(`{"type":"pong"}`)
		default:
			c.reply(`{"type":"error","error":"unknown frame type; use ack, read or ping"}`)
		}
	}
}

// write writes one frame. A write (or ping) whose context ends makes the
// WebSocket library drop the connection without a close frame, so neither
// takes the connection's context: a stopping gateway lets them finish and
// then closes with 1001.
func (c *conn) write(frame []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	metrics.GatewayFrameSent()
	return c.ws.Write(ctx, websocket.MessageText, frame)
}

func (c *conn) reply(frame string) { c.send([]byte(frame)) }

// closeWS closes c's WebSocket once ctx has ended, with a status that says
// why.
func (g *Gateway) closeWS(ctx context.Context, c *conn) {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errTokenExpired):
		c.ws.Close(websocket.StatusPolicyViolation, "token expired")
	case errors.Is(cause, errKeyExpired):
		c.ws.Close(websocket.StatusPolicyViolation, "signing key expired")
	case errors.Is(cause, errTooSlow):
		metrics.GatewaySlowClose()
		c.ws.Close(websocket.StatusTryAgainLater, "client too slow; reconnect")
	case g.base.Err() != nil:
		c.ws.Close(websocket.StatusGoingAway, "gateway shutting down; reconnect")
	default:
		c.ws.CloseNow()
	}
}
