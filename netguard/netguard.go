// Package netguard keeps the requests Chime makes to endpoints that tenants
// supply (web devices' webhook URLs) off the operator's own network.
//
// An endpoint may only be dialed at a globally reachable unicast address:
// loopback, private (RFC 1918, RFC 4193), link-local, carrier-grade NAT,
// multicast, unspecified, documentation, benchmarking and reserved ranges
// are refused, and so are IPv4-mapped, 6to4 and NAT64 forms of them. The
// check runs in the dialer's Control function, on the address the socket is
// about to connect to, after name resolution: a name that resolves to a
// refused address (at registration or, rebinding, only later) is refused
// all the same, and nothing is sent to it. Operators open ranges on purpose
// with an allow-list (CHIME_WEB_DEVICE_ALLOW_CIDRS), for local tests and
// demos on loopback.
//
// Endpoints the operator configures (CHIME_WEBHOOK_URL, the APNs and FCM
// hosts) are trusted and do not go through this package.
package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// ErrRefused is the error of a dial to an address the policy does not
// allow (wrapped in a *RefusedError).
var ErrRefused = errors.New("address not allowed")

// RefusedError names the address a dial was refused at.
type RefusedError struct{ Addr netip.Addr }

func (e *RefusedError) Error() string { return "dial " + e.Addr.String() + ": " + ErrRefused.Error() }

// Unwrap makes errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// Policy decides which addresses tenant endpoints may be dialed at: global
// unicast addresses, and those in its allow-list. The zero value and a nil
// *Policy allow global addresses only.
type Policy struct{ allow []netip.Prefix }

// New returns the policy that also allows the addresses in allow.
func New(allow []netip.Prefix) *Policy {
	p := &Policy{}
	for _, a := range allow {
		if a.IsValid() {
			p.allow = append(p.allow, netip.PrefixFrom(a.Addr().Unmap(), unmappedBits(a)).Masked())
		}
	}
	return p
}

// ParseCIDRs reads a list of CIDRs separated by commas
// ("127.0.0.0/8,::1/128"); an empty list is none.
func ParseCIDRs(spec string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(spec, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR such as 127.0.0.0/8 or ::1/128", s)
		}
		out = append(out, p)
	}
	return out, nil
}

// unmappedBits is the prefix length of a once its address is unmapped:
// ::ffff:127.0.0.0/104 is 127.0.0.0/8.
func unmappedBits(a netip.Prefix) int {
	if a.Addr().Is4In6() {
		return max(a.Bits()-96, 0)
	}
	return a.Bits()
}

// Allowed tells whether an endpoint may be dialed at addr.
func (p *Policy) Allowed(addr netip.Addr) bool {
	addr = addr.WithZone("").Unmap()
	if !addr.IsValid() {
		return false
	}
	if p != nil {
		for _, a := range p.allow {
			if a.Contains(addr) {
				return true
			}
		}
	}
	return global(addr)
}

// Check returns a *RefusedError unless addr is allowed.
func (p *Policy) Check(addr netip.Addr) error {
	if p.Allowed(addr) {
		return nil
	}
	return &RefusedError{Addr: addr}
}

// Control is a net.Dialer Control function: it refuses to connect to an
// address the policy does not allow. It runs for every address a dial
// tries, after resolution and before the connection is made.
func (p *Policy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s %q: %w", network, address, ErrRefused)
	}
	return p.Check(ap.Addr())
}

// DefaultDialTimeout bounds making one connection.
const DefaultDialTimeout = 10 * time.Second

// Dialer returns a dialer whose connections are checked by the policy.
func (p *Policy) Dialer() *net.Dialer {
	return &net.Dialer{Timeout: DefaultDialTimeout, KeepAlive: 30 * time.Second, Control: p.Control}
}

// Transport returns an HTTP transport, otherwise as http.DefaultTransport,
// whose connections are checked by the policy. It uses no proxy: through a
// proxy the address dialed would be the proxy's, not the endpoint's, and the
// policy could not see where a request goes.
func (p *Policy) Transport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DialContext = p.Dialer().DialContext
	return tr
}

// Ranges that are not globally reachable or are reserved (IANA's IPv4 and
// IPv6 special-purpose address registries), besides those netip.Addr names
// (loopback, private, link-local, multicast, unspecified).
var (
	special4 = prefixes(
		"0.0.0.0/8",       // "this network"
		"100.64.0.0/10",   // carrier-grade NAT (RFC 6598)
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation
		"192.88.99.0/24",  // 6to4 relay anycast (deprecated)
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"240.0.0.0/4",     // reserved, and the broadcast address
	)
	// IPv6 outside 2000::/3 is refused whole, but for NAT64.
	global6  = netip.MustParsePrefix("2000::/3")
	special6 = prefixes(
		"2001::/23",     // IETF protocol assignments (Teredo among them)
		"2001:db8::/32", // documentation
		"2002::/16",     // 6to4: an IPv4 address in an IPv6 one
		"3fff::/20",     // documentation
	)
	// The NAT64 well-known prefix carries an IPv4 address in its last 32
	// bits (RFC 6052), which must itself be global.
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// global tells whether addr is a globally reachable unicast address: the
// only kind a tenant endpoint may be dialed at without an allow-list.
func global(addr netip.Addr) bool {
	addr = addr.WithZone("").Unmap()
	if !addr.IsValid() || addr.IsUnspecified() || addr.IsLoopback() || addr.IsPrivate() || addr.IsMulticast() ||
		addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast() {
		return false
	}
	if addr.Is4() {
		for _, p := range special4 {
			if p.Contains(addr) {
				return false
			}
		}
		return true
	}
	if nat64.Contains(addr) {
		b := addr.As16()
		return global(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	}
	if !global6.Contains(addr) {
		return false
	}
	for _, p := range special6 {
		if p.Contains(addr) {
			return false
		}
	}
	return true
}
