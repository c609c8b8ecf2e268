package gateway_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/gateway"
	"github.com/chime-dev/chime/internal/testenv"
)

// Injected: a rotation of the app's key with the default overlap (24h), and
// a clock moved by hand. Checked: during the overlap clients connect with
// tokens of the old key and of the new; once the overlap has passed, the
// old key's tokens are refused (401, naming its expiry) and the new key's
// still connect.
func TestRotationOverlap(t *testing.T) {
	fake := clock.NewFake(time.Now())
	f := start(t, withClock(fake))
	ctx := context.Background()
	old := f.key
	next, err := f.api(t).Rotate(ctx, f.app, nil, fake.Now())
	require.NoError(t, err)
	require.NotEqual(t, old.ID, next.ID)

	fake.Advance(23*time.Hour + 59*time.Minute)
	require.NoError(t, dialWith(t, f, nil, old, "during-old", time.Minute).Close())
	require.NoError(t, dialWith(t, f, nil, next, "during-new", time.Minute).Close())

	fake.Advance(time.Minute)
	f.refused(t, nil, f.token(t, old, "after-old", time.Minute), http.StatusUnauthorized, "its signing key "+old.ID+" expired at")
	require.NoError(t, dialWith(t, f, nil, next, "after-new", time.Minute).Close())
}

// Injected: a rotation with no overlap, made by another process's keys
// while a client is connected with a token of the old key; the gateway
// caches keys for an hour, so only the announcement on Redis can tell it.
// Checked: the open connection is closed with 1008 "signing key expired"
// (within a heartbeat), and new tokens of the old key are refused.
func TestRevokedKeyEndsItsConnections(t *testing.T) {
	f := start(t)
	c := dial(t, f, "alice", time.Hour)
	zero := time.Duration(0)
	next, err := f.api(t).Rotate(context.Background(), f.app, &zero, time.Now())
	require.NoError(t, err)
	ce := closeError(t, c)
	require.Equal(t, websocket.StatusPolicyViolation, ce.Code)
	require.Equal(t, "signing key expired", ce.Reason)
	f.refused(t, nil, f.token(t, f.key, "alice", time.Hour), http.StatusUnauthorized, "expired at")
	dialWith(t, f, nil, next, "alice", time.Hour)
}

// Injected: a limit of 3 connections per user, and a fourth connection of
// one user. Checked: it is refused with 429 and a problem naming the limit,
// another user still connects, and once one of the three closes the user
// connects again.
func TestConnectionsPerUser(t *testing.T) {
	f := start(t, withConfig(func(c *gateway.Config) { c.MaxConnsPerUser = 3 }))
	var cs []*gateway.Client
	for range 3 {
		cs = append(cs, dial(t, f, "alice", time.Hour))
	}
	f.refused(t, nil, f.token(t, f.key, "alice", time.Hour), http.StatusTooManyRequests, "already has 3 connections")
	dial(t, f, "bob", time.Hour)
	require.NoError(t, cs[0].Close())
	testenv.WaitUntil(t, 5*time.Second, "the closed connection gone", func() bool { return f.gw.Connections() == 3 })
	dial(t, f, "alice", time.Hour)
}

// Injected: a handshake limit of 3 at once and one per 1,000 s per address,
// and a flood of handshakes from 127.0.0.1 (bad tokens first, then a good
// one). Checked: the fourth and later get 429 with Retry-After, even with a
// good token, while a client from 127.0.0.2 connects.
func TestHandshakeFloodIsLimitedPerAddress(t *testing.T) {
	f := start(t, withConfig(func(c *gateway.Config) { c.HandshakeRate, c.HandshakeBurst = 0.001, 3 }))
	for range 3 {
		f.refused(t, nil, "bad", http.StatusUnauthorized, "not valid")
	}
	h := f.refused(t, nil, f.token(t, f.key, "alice", time.Hour), http.StatusTooManyRequests, "too many handshakes from this address")
	secs, err := strconv.Atoi(h.Get("Retry-After"))
	require.NoError(t, err)
	require.Greater(t, secs, 0)
	f.refused(t, nil, "bad", http.StatusTooManyRequests, "too many handshakes")

	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	other := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	dialWith(t, f, other, f.key, "alice", time.Hour)
}
