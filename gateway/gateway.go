// Package gateway is the WebSocket server that apps' clients keep a
// connection to, so that reminders reach online users over the app's own
// connection instead of through push providers.
//
// A client connects to /ws with a token its app backend issued (an HS256 JWT
// with the app, the user as subject, iat and exp, signed with one of the
// app's own keys, named by its kid; see package token and package signing). A
// missing, bad or expired token is refused with 401 before the upgrade; a
// connection whose token expires later, or whose signing key a rotation
// ends, is closed with status 1008. Handshakes are limited per remote
// address and connections per user (429 before the upgrade).
//
// On connect the gateway records the connection in presence (package
// presence), sends the messages waiting in the user's inbox (package inbox),
// then a welcome frame. Workers publish messages for the gateway's users to
// the gateway's own Redis stream (presence.StreamKey), which the gateway
// reads and writes to the users' connections. Clients acknowledge what they
// received ({"type":"ack","ids":[...]}) and what the user read
// ({"type":"read","ids":[...]}); the gateway applies these to the inbox in
// batches and records the status changes.
//
// Liveness: every HeartbeatInterval the gateway pings each client and closes
// a connection whose pong does not come within PingTimeout, closes those
// whose token has expired (so within a heartbeat of the expiry), and refreshes
// the presence of all its open connections (one pipelined round trip, one
// script per shard of their users). A connection therefore stops counting as online within
// HeartbeatInterval + PingTimeout of its client vanishing, and within the
// presence TTL of the whole gateway vanishing (killed, partitioned).
//
// Any number of instances run side by side; each has its own ID, stream and
// connections, and needs no knowledge of the others.
package gateway

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/inbox"
	"github.com/chime-dev/chime/keyspace"
	"github.com/chime-dev/chime/metrics"
	"github.com/chime-dev/chime/presence"
	"github.com/chime-dev/chime/signing"
	"github.com/chime-dev/chime/status"
	"github.com/chime-dev/chime/token"
)

// Config configures a gateway.
type Config struct {
	// Addr is where it listens when no listener is given. Defaults to
	// DefaultAddr (":8081").
	Addr string
	// Instance names this gateway in presence and its stream; it must be
	// unique among running gateways and must not contain "|". Required.
	Instance string
	// Prefix starts every Redis key. Defaults to keyspace.DefaultPrefix.
	Prefix string
	// MaxTokenLifetime bounds a client token: its exp at most this long
	// after its iat and after it is presented. Defaults to
	// token.DefaultMaxLifetime (24h).
	MaxTokenLifetime time.Duration
	// MaxConnsPerUser is the most connections one user of one app may
	// hold on this instance; one more is refused with 429. Defaults to
	// DefaultMaxConnsPerUser (10).
	MaxConnsPerUser int
	// HandshakeRate is how many WebSocket handshakes per second one remote
	// address (an IPv4 address, an IPv6 /64) may make, and HandshakeBurst
	// how many at once; one more is refused with 429 and Retry-After.
	// Default to DefaultHandshakeRate (10) and DefaultHandshakeBurst (50).
	HandshakeRate  float64
	HandshakeBurst int
	// Addresses bounds how many remote addresses' handshake counts are
	// kept; the least recently seen are forgotten first. Defaults to
	// DefaultAddresses (100,000).
	Addresses int
	// HeartbeatInterval is how often clients are pinged and presence is
	// refreshed. Defaults to DefaultHeartbeatInterval (10s); the presence TTL must be longer.
	HeartbeatInterval time.Duration
	// PingTimeout is how long a client has to answer a ping. Defaults to
	// DefaultPingTimeout (5s).
	PingTimeout time.Duration
	// AckFlush is how long acknowledgements and read receipts are gathered
	// before they are applied together (two pipelined round trips of a few
	// commands per user, one status upsert), and AckBatch how many frames of them are
	// applied at most at once. A gateway that dies loses what it gathered:
	// those messages are still pending and come again on the next connect.
	// Default to DefaultAckFlush (5ms) and DefaultAckBatch (1,000).
	AckFlush time.Duration
	AckBatch int
	// SendQueue is how many frames may wait for a slow client before its
	// connection is closed (its messages stay in its inbox), and the most
	// waiting messages replayed on connect. Defaults to 64.
	SendQueue int
	// ShutdownTimeout bounds a graceful stop. Defaults to
	// DefaultShutdownTimeout (10s); CHIME_SHUTDOWN_TIMEOUT sets it.
	ShutdownTimeout time.Duration

	// Opens counts read receipts as opens of their occurrences (package
	// deliveryevent). Defaults to none.
	Opens Opens
}

// Opens counts the opens read receipts report.
type Opens interface {
	Read(ctx context.Context, app int64, user string, messages []string, occurrenceOf func(string) int64, now time.Time)
}

// Defaults of the Config.
const (
	DefaultMaxConnsPerUser = 10
	DefaultHandshakeRate   = 10
	DefaultHandshakeBurst  = 50
	DefaultAddresses       = 100_000

	DefaultAddr              = ":8081"
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultPingTimeout       = 5 * time.Second
	DefaultShutdownTimeout   = 10 * time.Second
	DefaultAckFlush          = 5 * time.Millisecond
	DefaultAckBatch          = 1000
)

func (c *Config) defaults() {
	c.MaxTokenLifetime = cmp.Or(c.MaxTokenLifetime, token.DefaultMaxLifetime)
	c.MaxConnsPerUser = cmp.Or(c.MaxConnsPerUser, DefaultMaxConnsPerUser)
	c.HandshakeRate = cmp.Or(c.HandshakeRate, DefaultHandshakeRate)
	c.HandshakeBurst = cmp.Or(c.HandshakeBurst, DefaultHandshakeBurst)
	c.Addresses = cmp.Or(c.Addresses, DefaultAddresses)
	c.Addr = cmp.Or(c.Addr, DefaultAddr)
	c.Prefix = cmp.Or(c.Prefix, keyspace.DefaultPrefix)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, DefaultHeartbeatInterval)
	c.PingTimeout = cmp.Or(c.PingTimeout, DefaultPingTimeout)
	c.AckFlush = cmp.Or(c.AckFlush, DefaultAckFlush)
	c.AckBatch = cmp.Or(c.AckBatch, DefaultAckBatch)
	if c.SendQueue == 0 {
		c.SendQueue = 64
	}
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, DefaultShutdownTimeout)
}

// Keys finds the signing keys of client tokens, and keeps what it caches
// up to date with rotations until ctx ends.
type Keys interface {
	token.KeyFinder
	Watch(ctx context.Context) error
}

var _ Keys = (*signing.Keys)(nil)

// Gateway serves WebSocket clients.
type Gateway struct {
	cfg        Config
	rdb        redis.UniversalClient
	presence   *presence.Registry
	inbox      *inbox.Store
	status     *status.Recorder
	keys       Keys
	handshakes *handshakes
	clock      clock.Clock
	log        *slog.Logger
	ln         net.Listener

	acks chan inbox.Ack
	// registers hands opening connections to registerConns.
	registers chan registration
	// base is cancelled at shutdown; every connection's context derives
	// from it.
	base   context.Context
	cancel context.CancelFunc
	connWG sync.WaitGroup

	mu     sync.Mutex
	byUser map[userKey][]*conn // most users hold one
	// opening counts the connections admitted and not yet in byUser, so
	// that handshakes at once cannot pass the per-user limit together.
	opening map[userKey]int
}

type userKey struct {
	app  int64
	user string
}

// New returns a gateway. If ln is nil it listens on cfg.Addr when run.
func New(cfg Config, rdb redis.UniversalClient, p *presence.Registry, in *inbox.Store, st *status.Recorder, keys Keys,
	clk clock.Clock, log *slog.Logger, ln net.Listener) (*Gateway, error) {
	cfg.defaults()
	switch {
	case cfg.Instance == "" || strings.Contains(cfg.Instance, "|"):
		return nil, errors.New("gateway: an instance ID without '|' is required")
	case keys == nil:
		return nil, errors.New("gateway: signing keys are required")
	case cfg.MaxConnsPerUser < 0 || cfg.HandshakeRate < 0 || cfg.HandshakeBurst < 0 || cfg.Addresses < 0 || cfg.MaxTokenLifetime < 0 ||
		cfg.AckFlush < 0 || cfg.AckBatch < 0:
		return nil, errors.New("gateway: limits must not be negative")
	case p.TTL() <= cfg.HeartbeatInterval:
		return nil, fmt.Errorf("gateway: the presence TTL (%s) must be longer than the heartbeat interval (%s)", p.TTL(), cfg.HeartbeatInterval)
	}
	base, cancel := context.WithCancel(context.Background())
	return &Gateway{
		cfg: cfg, rdb: rdb, presence: p, inbox: in, status: st, keys: keys, clock: clk, log: log.With("gateway", cfg.Instance), ln: ln,
		handshakes: newHandshakes(cfg.HandshakeRate, cfg.HandshakeBurst, cfg.Addresses),
		acks:       make(chan inbox.Ack, 4096), registers: make(chan registration), base: base, cancel: cancel,
		byUser: map[userKey][]*conn{}, opening: map[userKey]int{},
	}, nil
}

// Instance returns the gateway's instance ID.
func (g *Gateway) Instance() string { return g.cfg.Instance }

// Config returns the gateway's configuration with its defaults.
func (g *Gateway) Config() Config { return g.cfg }

// Connections returns how many clients are connected.
func (g *Gateway) Connections() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, cs := range g.byUser {
		n += len(cs)
	}
	return n
}

// Handler returns the gateway's HTTP routes: /ws (the WebSocket), /healthz
// and /debug/vars (Go runtime figures, for load tests).
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", g.serveWS)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "ok", "instance": g.cfg.Instance, "connections": g.Connections(),
			"goroutines": runtime.NumGoroutine()})
	})
	mux.Handle("GET /debug/vars", expvar.Handler())
	return mux
}

// Run serves until ctx is cancelled, then closes every connection (status
// 1001, the client reconnects elsewhere), removes their presence, applies
// the acknowledgements received and deletes its stream.
func (g *Gateway) Run(ctx context.Context) error {
	ln := g.ln
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", g.cfg.Addr); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	if err := g.touchStream(ctx); err != nil {
		return err
	}
	srv := &http.Server{Handler: g.Handler(), ReadHeaderTimeout: 10 * time.Second}
	eg, ectx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		g.log.Info("gateway listening", "addr", ln.Addr().String())
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	eg.Go(func() error { return g.readStream(ectx) })
	eg.Go(func() error { return g.heartbeat(ectx) })
	eg.Go(func() error { return g.keys.Watch(ectx) })
	eg.Go(func() error { return g.registerConns(ectx) })
	ackStop, ackDone := make(chan struct{}), make(chan error, 1)
	go func() { ackDone <- g.flushAcks(ackStop) }()
	eg.Go(func() error {
		<-ectx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownTimeout)
		defer cancel()
		err := srv.Shutdown(sctx)
		// Hijacked WebSocket connections are not the server's to close.
		g.cancel()
		waited := make(chan struct{})
		go func() { g.connWG.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-sctx.Done():
			g.log.Warn("connections still closing at shutdown timeout")
		}
		return err
	})
	err := eg.Wait()
	// g.acks stays open: a connection still closing after the shutdown
	// timeout may yet send to it (what it sends is not applied, and those
	// messages come again on the next connect).
	close(ackStop)
	if aerr := <-ackDone; err == nil {
		err = aerr
	}
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if derr := g.rdb.Del(dctx, presence.StreamKey(g.cfg.Prefix, g.cfg.Instance)).Err(); derr != nil {
		g.log.Warn("delete stream", "err", derr)
	}
	g.log.Info("gateway stopped")
	return err
}

// touchStream creates the instance's stream if needed and extends its life
// to the presence TTL: one heartbeat entry, which readers skip.
func (g *Gateway) touchStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	key := presence.StreamKey(g.cfg.Prefix, g.cfg.Instance)
	_, err := g.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.XAdd(ctx, &redis.XAddArgs{Stream: key, MaxLen: presence.StreamMaxLen, Approx: true, Values: []any{"hb", "1"}})
		p.PExpire(ctx, key, g.presence.TTL())
		return nil
	})
	if err != nil {
		return fmt.Errorf("touch stream: %w", err)
	}
	return nil
}

// refresh refreshes the presence of all open connections together, so that
// each shard of their users is one script (presence.Registry.Refresh splits
// only shards of more than a thousand): per script, Redis's time has a part
// that does not depend on how many connections it refreshes, and calls of
// a thousand connections, 16 of them per shard, cost it about 11 µs of CPU
// per connection where one call of 10,000 costs about 7 (BenchmarkRefresh
// in package presence).
func (g *Gateway) refresh(ctx context.Context) {
	conns := g.snapshot()
	if len(conns) == 0 {
		return
	}
	batch := make([]presence.Conn, len(conns))
	for i, c := range conns {
		batch[i] = c.pc
	}
	missing, err := g.presence.Refresh(ctx, batch)
	if err != nil && ctx.Err() == nil {
		metrics.GatewayPresenceError()
		g.log.Warn("refresh presence", "err", err)
	}
	// Expired while Redis was unreachable, or removed by a closing
	// connection of the same ID (impossible): put back those whose
	// connections are still open, together.
	missing = slices.DeleteFunc(missing, func(pc presence.Conn) bool { return !g.isOpen(pc) })
	if err := g.presence.Register(ctx, missing...); err != nil && ctx.Err() == nil {
		metrics.GatewayPresenceError()
		g.log.Warn("register presence again", "conns", len(missing), "err", err)
	}
}

// heartbeat refreshes presence and the stream every interval.
func (g *Gateway) heartbeat(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-g.clock.After(g.cfg.HeartbeatInterval):
		}
		if err := g.touchStream(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("heartbeat", "err", err)
		}
		g.refresh(ctx)
		live := g.snapshot()
		g.endRevoked(ctx, live)
		now := g.clock.Now()
		for _, c := range live {
			if !now.Before(c.expires) {
				c.cancel(errTokenExpired)
				continue
			}
			c.ping(g.cfg.PingTimeout)
		}
	}
}

// endRevoked closes the connections whose signing key is no longer valid
// (a rotation's overlap passed, or a rotation with no overlap ended it), so
// that a leaked key stops serving the connections it opened too, within a
// heartbeat. A key that cannot be read keeps its connections until the next
// heartbeat.
func (g *Gateway) endRevoked(ctx context.Context, conns []*conn) {
	now := g.clock.Now()
	valid := map[string]bool{}
	var lookupErr error
	for _, c := range conns {
		ok, seen := valid[c.kid]
		if !seen {
			key, err := g.keys.Lookup(ctx, c.kid, now)
			switch {
			case errors.Is(err, signing.ErrNotFound):
			case err != nil:
				ok, lookupErr = true, err
			default:
				ok = key.Valid(now)
			}
			valid[c.kid] = ok
		}
		if !ok {
			c.cancel(errKeyExpired)
		}
	}
	if lookupErr != nil && ctx.Err() == nil {
		g.log.Warn("check signing keys of open connections", "err", lookupErr)
	}
}

func (g *Gateway) snapshot() []*conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*conn
	for _, cs := range g.byUser {
		out = append(out, cs...)
	}
	return out
}

func (g *Gateway) isOpen(pc presence.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.byUser[userKey{pc.App, pc.User}] {
		if c.pc.ID == pc.ID {
			return true
		}
	}
	return false
}

// readStream delivers what workers publish to this instance.
func (g *Gateway) readStream(ctx context.Context) error {
	key := presence.StreamKey(g.cfg.Prefix, g.cfg.Instance)
	last := "0-0"
	for ctx.Err() == nil {
		res, err := g.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{key, last}, Count: 512, Block: time.Second}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			g.log.Warn("read stream", "err", err)
			select {
			case <-ctx.Done():
			case <-g.clock.After(time.Second):
			}
			continue
		}
		for _, s := range res {
			for _, m := range s.Messages {
				last = m.ID
				raw, ok := m.Values["e"].(string)
				if !ok {
					continue // a heartbeat entry
				}
				var env presence.Envelope
				if err := json.Unmarshal([]byte(raw), &env); err != nil {
					g.log.Warn("bad stream entry", "id", m.ID, "err", err)
					continue
				}
				g.dispatch(env)
			}
		}
		// Entries read are delivered or in the users' inboxes: drop them.
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := g.rdb.XTrimMinID(tctx, key, last).Err(); err != nil && ctx.Err() == nil {
			g.log.Warn("trim stream", "err", err)
		}
		cancel()
	}
	return nil
}

// dispatch writes one published message to the connections of its users.
func (g *Gateway) dispatch(env presence.Envelope) {
	frame := messageFrame(env.Message)
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, u := range env.Users {
		for _, c := range g.byUser[userKey{env.App, u}] {
			c.send(frame)
			metrics.GatewayMessageSent()
		}
	}
}

func messageFrame(msg json.RawMessage) []byte {
	b := make([]byte, 0, len(msg)+32)
	b = append(b, `{"type":"message","message":`...)
	b = append(b, msg...)
	return append(b, '}')
}

// registration is one opening connection to register in presence, and
// where to answer.
type registration struct {
	conn presence.Conn
	done chan error
}

// registerBatch is the most connections registered together.
const registerBatch = 1000

// register registers c in presence together with the other connections
// opening meanwhile (registerConns).
func (g *Gateway) register(ctx context.Context, c presence.Conn) error {
	r := registration{conn: c, done: make(chan error, 1)}
	select {
	case g.registers <- r:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	return <-r.done
}

// registerConns registers opening connections until ctx ends: those that
// come while a registration is in flight wait for it and are then
// registered together (one round trip, one script per shard of their
// users), up to registerBatch at once. A connection opening alone waits
// for no timer, and a burst of connects costs a few scripts per shard
// instead of one script and one round trip per connection.
func (g *Gateway) registerConns(ctx context.Context) error {
	var batch []registration
	conns := make([]presence.Conn, 0, registerBatch)
	for {
		batch, conns = batch[:0], conns[:0]
		select {
		case r := <-g.registers:
			batch = append(batch, r)
		case <-ctx.Done():
			return nil
		}
	gather:
		for len(batch) < registerBatch {
			select {
			case r := <-g.registers:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		for _, r := range batch {
			conns = append(conns, r.conn)
		}
		err := g.presence.Register(ctx, conns...)
		for _, r := range batch {
			r.done <- err
		}
	}
}

// flushAcks applies acknowledgements in batches until stop is closed, then
// applies those already sent.
func (g *Gateway) flushAcks(stop <-chan struct{}) error {
	var batch []inbox.Ack
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		now := g.clock.Now()
		changed, err := g.inbox.Apply(ctx, batch, now)
		if err != nil {
			g.log.Warn("apply acknowledgements; clients will get those messages again", "acks", len(batch), "err", err)
			if changed == nil {
				batch = batch[:0]
				return
			}
			// Those applied before the error are recorded: a retry would
			// not report them again.
		}
		var entries []status.Entry
		for i, a := range batch {
			st := status.Delivered
			if a.Read {
				st = status.Read
			}
			for _, id := range changed[i] {
				entries = append(entries, status.Entry{App: a.App, User: a.User, Message: id, Occurrence: inbox.OccurrenceOf(id), Channel: status.Gateway, State: st})
			}
		}
		// Their detail is in the inbox; the aggregates count them.
		if g.status != nil {
			if err := g.status.Count(ctx, entries); err != nil {
				g.log.Warn("count acknowledgements", "err", err)
			}
		}
		if g.cfg.Opens != nil {
			for i, a := range batch {
				if a.Read {
					g.cfg.Opens.Read(ctx, a.App, a.User, changed[i], inbox.OccurrenceOf, now)
				}
			}
		}
		batch = batch[:0]
	}
	for {
		select {
		case a := <-g.acks:
			batch = append(batch, a)
		case <-stop:
			// Apply what the closed connections sent.
			for {
				select {
				case a := <-g.acks:
					batch = append(batch, a)
				default:
					flush()
					return nil
				}
			}
		}
		deadline := g.clock.After(g.cfg.AckFlush)
	gather:
		for len(batch) < g.cfg.AckBatch {
			select {
			case a := <-g.acks:
				batch = append(batch, a)
			case <-deadline:
				break gather
			}
		}
		flush()
	}
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
