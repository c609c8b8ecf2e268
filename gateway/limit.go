package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// handshakes limits WebSocket handshakes per remote address with a token
// bucket each. The buckets are kept in an LRU of bounded size: an address
// forgotten comes back with a full bucket, which only the least recently
// seen addresses get.
type handshakes struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex // makes get-or-add one step
	buckets *lru.Cache[netip.Addr, *rate.Limiter]
}

func newHandshakes(perSecond float64, burst, addresses int) *handshakes {
	buckets, _ := lru.New[netip.Addr, *rate.Limiter](addresses) // errs only for a size below 1
	return &handshakes{rate: rate.Limit(perSecond), burst: burst, buckets: buckets}
}

// allow takes one handshake from addr's bucket at now, or says how long
// until one is there.
func (h *handshakes) allow(addr netip.Addr, now time.Time) (time.Duration, bool) {
	h.mu.Lock()
	lim, ok := h.buckets.Get(addr)
	if !ok {
		lim = rate.NewLimiter(h.rate, h.burst)
		h.buckets.Add(addr, lim)
	}
	h.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return time.Minute, false // a burst of 0: never
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// remoteAddr is the address a request's handshakes are counted under: the
// peer's IPv4 address, or the /64 of its IPv6 address (what one host is
// usually given). Headers such as X-Forwarded-For are not read: anyone can
// set them.
func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}
