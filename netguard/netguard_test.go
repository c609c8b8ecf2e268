package netguard_test

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/netguard"
)

// The policy refuses every range that is not globally reachable, in every
// spelling (IPv4-mapped, zoned, NAT64, 6to4), and allows public addresses
// and what the allow-list opens. Pure logic: nothing is dialed.
func TestPolicyAllowed(t *testing.T) {
	open := netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::ffff:10.1.0.0/112")})
	for _, tc := range []struct {
		addr      string
		def, with bool // allowed by the default policy, and with open
	}{
		{"8.8.8.8", true, true},
		{"1.1.1.1", true, true},
		{"2606:4700:4700::1111", true, true},
		{"64:ff9b::808:808", true, true}, // NAT64 of 8.8.8.8
		{"127.0.0.1", false, true},
		{"127.1.2.3", false, true},
		{"::ffff:127.0.0.1", false, true},
		{"::1", false, false},
		{"10.0.0.1", false, false},
		{"10.1.2.3", false, true}, // opened as ::ffff:10.1.0.0/112, i.e. 10.1.0.0/16
		{"172.16.5.4", false, false},
		{"192.168.1.1", false, false},
		{"169.254.169.254", false, false},
		{"::ffff:169.254.169.254", false, false},
		{"100.64.0.1", false, false},
		{"0.0.0.0", false, false},
		{"0.1.2.3", false, false},
		{"224.0.0.1", false, false},
		{"239.255.255.250", false, false},
		{"255.255.255.255", false, false},
		{"240.0.0.1", false, false},
		{"192.0.2.10", false, false},
		{"198.18.0.1", false, false},
		{"::", false, false},
		{"fc00::1", false, false},
		{"fd12:3456::1", false, false},
		{"fe80::1", false, false},
		{"fe80::1%eth0", false, false},
		{"fec0::1", false, false},
		{"ff02::1", false, false},
		{"::127.0.0.1", false, false},        // IPv4-compatible (deprecated)
		{"64:ff9b::7f00:1", false, false},    // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", false, false}, // NAT64 of 169.254.169.254
		{"64:ff9b:1::1", false, false},
		{"2002:7f00:1::1", false, false}, // 6to4 of 127.0.0.1
		{"2001:db8::1", false, false},
		{"2001::1", false, false}, // Teredo
		{"100::1", false, false},
	} {
		a := netip.MustParseAddr(tc.addr)
		require.Equal(t, tc.def, netguard.New(nil).Allowed(a), "default policy, %s", tc.addr)
		require.Equal(t, tc.def, (*netguard.Policy)(nil).Allowed(a), "nil policy, %s", tc.addr)
		require.Equal(t, tc.with, open.Allowed(a), "with the allow-list, %s", tc.addr)
	}
	require.False(t, netguard.New(nil).Allowed(netip.Addr{}))
}

// countingServer is an HTTP server on loopback that counts the connections
// it accepts.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// A real request through the guarded transport to a server on loopback, by
// address and by the name "localhost", is refused before any connection is
// made (the server accepts none), with an error that is ErrRefused; with
// loopback in the allow-list the same request goes through.
func TestTransportRefusesBeforeConnecting(t *testing.T) {
	srv, conns := countingServer(t)
	byName := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	guarded := &http.Client{Transport: netguard.New(nil).Transport()}
	for _, url := range []string{srv.URL, byName} {
		_, err := guarded.Get(url)
		require.ErrorIs(t, err, netguard.ErrRefused, url)
		var refused *netguard.RefusedError
		require.True(t, errors.As(err, &refused), "%v", err)
		require.True(t, refused.Addr.IsLoopback(), "%v", refused.Addr)
	}
	require.Zero(t, conns.Load(), "nothing was dialed")

	open := &http.Client{Transport: netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}).Transport()}
	res, err := open.Get(byName)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusNoContent, res.StatusCode)
	require.EqualValues(t, 1, conns.Load())
}

// The allow-list is CIDRs separated by commas; anything else is refused
// with the value named.
func TestParseCIDRs(t *testing.T) {
	got, err := netguard.ParseCIDRs(" 127.0.0.0/8, ::1/128 ,")
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}, got)
	got, err = netguard.ParseCIDRs("")
	require.NoError(t, err)
	require.Empty(t, got)
	_, err = netguard.ParseCIDRs("127.0.0.0/8,localhost")
	require.ErrorContains(t, err, `"localhost" is not a CIDR`)
}
