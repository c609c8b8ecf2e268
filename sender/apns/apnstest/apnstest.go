// Package apnstest is a local APNs server for tests and benchmarks. It
// speaks the provider API as Apple documents it: HTTP/2 over TLS,
// POST /3/device/<token>, an ES256 provider token (JWT) in the
// authorization header checked against the registered key, the apns-topic,
// apns-push-type, apns-priority, apns-expiration and apns-id headers, and
// error answers with Apple's JSON bodies ({"reason":"BadDeviceToken"} 400,
// {"reason":"Unregistered","timestamp":...} 410, 429 TooManyRequests,
// 500 InternalServerError, 503 ServiceUnavailable).
//
// Errors are injected per device token with Fail: the next requests for that
// token get the given answers in order, later ones succeed. A token can also
// be marked unregistered for good.
package apnstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/chime-dev/chime/internal/faults"
)

// Fault is an error answer to inject.
type Fault struct {
	Status int
	Reason string
}

// The answers APNs gives that the channel must handle.
var (
	BadDeviceToken      = Fault{http.StatusBadRequest, "BadDeviceToken"}
	Unregistered        = Fault{http.StatusGone, "Unregistered"}
	TooManyRequests     = Fault{http.StatusTooManyRequests, "TooManyRequests"}
	InternalServerError = Fault{http.StatusInternalServerError, "InternalServerError"}
	ServiceUnavailable  = Fault{http.StatusServiceUnavailable, "ServiceUnavailable"}
)

// Push is a notification the server accepted.
type Push struct {
	Token    string
	Topic    string
	PushType string
	ID       string
	Payload  map[string]any
}

// Server is a running local APNs.
type Server struct {
	// URL is the server's base URL (https://127.0.0.1:port), for
	// apns2.Client.Host.
	URL    string
	srv    *httptest.Server
	key    *ecdsa.PublicKey
	keyID  string
	teamID string
	topic  string

	faults     faults.Tokens[Fault]
	mu         sync.Mutex
	verified   map[string]time.Time // provider token -> its iat
	pushes     map[string][]Push
	accepted   int
	lastAt     time.Time // when the last push was accepted
	rejected   int
	keepPushes bool
}

// Config says whose provider tokens the server accepts.
type Config struct {
	// Key verifies provider tokens: the public half of the .p8 key.
	Key *ecdsa.PublicKey
	// KeyID and TeamID must match the token's kid and iss.
	KeyID, TeamID string
	// Topic is the only apns-topic accepted (the app's bundle ID).
	Topic string
	// Discard keeps counts only, not the pushes (for benchmarks).
	Discard bool
}

// New starts a server on a loopback port.
func New(cfg Config) *Server {
	s := &Server{key: cfg.Key, keyID: cfg.KeyID, teamID: cfg.TeamID, topic: cfg.Topic, keepPushes: !cfg.Discard,
		pushes: map[string][]Push{}, verified: map[string]time.Time{}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.EnableHTTP2 = true
	s.srv.StartTLS()
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// CertPEM returns the server's TLS certificate, for the client's roots.
func (s *Server) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// Fail makes the next len(faults) requests for token get faults, in order.
func (s *Server) Fail(token string, faults ...Fault) {
	s.faults.Fail(token, faults...)
}

// Unregister makes every later request for token get 410 Unregistered.
func (s *Server) Unregister(token string) {
	s.faults.Unregister(token)
}

// Pushes returns the notifications accepted for token.
func (s *Server) Pushes(token string) []Push {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Push(nil), s.pushes[token]...)
}

// Counts returns how many requests were accepted and rejected.
func (s *Server) Counts() (accepted, rejected int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted, s.rejected
}

// LastAccepted is when the server last accepted a push (zero before the
// first): a load run's fire-to-last-delivery for the channel.
func (s *Server) LastAccepted() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAt
}

func (s *Server) reject(w http.ResponseWriter, f Fault) {
	s.mu.Lock()
	s.rejected++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("apns-id", uuid.NewString())
	w.WriteHeader(f.Status)
	body := map[string]any{"reason": f.Reason}
	if f.Status == http.StatusGone {
		body["timestamp"] = time.Now().UnixMilli()
	}
	_ = json.NewEncoder(w).Encode(body)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 2 {
		http.Error(w, "HTTP/2 required", http.StatusHTTPVersionNotSupported)
		return
	}
	if r.Method != http.MethodPost {
		s.reject(w, Fault{http.StatusMethodNotAllowed, "MethodNotAllowed"})
		return
	}
	tok, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
	if !ok {
		s.reject(w, Fault{http.StatusNotFound, "BadPath"})
		return
	}
	if f, ok := s.checkAuth(r.Header.Get("authorization")); !ok {
		s.reject(w, f)
		return
	}
	if f, ok := s.checkHeaders(r.Header); !ok {
		s.reject(w, f)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4097))
	if err != nil {
		s.reject(w, Fault{http.StatusBadRequest, "BadPayload"})
		return
	}
	if len(body) > 4096 {
		s.reject(w, Fault{http.StatusRequestEntityTooLarge, "PayloadTooLarge"})
		return
	}
	if len(body) == 0 {
		s.reject(w, Fault{http.StatusBadRequest, "PayloadEmpty"})
		return
	}
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		s.reject(w, Fault{http.StatusBadRequest, "BadPayload"})
		return
	}
	if raw, err := hex.DecodeString(tok); err != nil || len(raw) < 32 {
		s.reject(w, BadDeviceToken)
		return
	}
	if f, ok := s.faults.Next(tok, Unregistered); ok {
		s.reject(w, f)
		return
	}
	s.mu.Lock()
	id := r.Header.Get("apns-id")
	if id == "" {
		id = uuid.NewString()
	}
	s.accepted++
	s.lastAt = time.Now()
	if s.keepPushes {
		s.pushes[tok] = append(s.pushes[tok], Push{Token: tok, Topic: r.Header.Get("apns-topic"),
			PushType: r.Header.Get("apns-push-type"), ID: id, Payload: p})
	}
	s.mu.Unlock()
	w.Header().Set("apns-id", id)
	w.WriteHeader(http.StatusOK)
}

// checkAuth verifies the provider token as APNs does: ES256, the registered
// key ID and team, issued within the last hour. Like APNs, it verifies a
// token's signature once and then only checks its age.
func (s *Server) checkAuth(h string) (Fault, bool) {
	raw, ok := strings.CutPrefix(h, "bearer ")
	if !ok || raw == "" {
		return Fault{http.StatusForbidden, "MissingProviderToken"}, false
	}
	s.mu.Lock()
	at, seen := s.verified[raw]
	s.mu.Unlock()
	if seen {
		if time.Since(at) > time.Hour {
			return Fault{http.StatusForbidden, "ExpiredProviderToken"}, false
		}
		return Fault{}, true
	}
	claims := jwt.MapClaims{}
	t, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		if t.Header["kid"] != s.keyID {
			return nil, jwt.ErrTokenUnverifiable
		}
		return s.key, nil
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(s.teamID), jwt.WithIssuedAt())
	if err != nil || !t.Valid {
		return Fault{http.StatusForbidden, "InvalidProviderToken"}, false
	}
	iat, err := claims.GetIssuedAt()
	if err != nil || iat == nil {
		return Fault{http.StatusForbidden, "InvalidProviderToken"}, false
	}
	if time.Since(iat.Time) > time.Hour {
		return Fault{http.StatusForbidden, "ExpiredProviderToken"}, false
	}
	s.mu.Lock()
	s.verified[raw] = iat.Time
	s.mu.Unlock()
	return Fault{}, true
}

func (s *Server) checkHeaders(h http.Header) (Fault, bool) {
	switch topic := h.Get("apns-topic"); {
	case topic == "":
		return Fault{http.StatusBadRequest, "MissingTopic"}, false
	case topic != s.topic:
		return Fault{http.StatusBadRequest, "TopicDisallowed"}, false
	}
	switch h.Get("apns-push-type") {
	case "alert", "background", "location", "voip", "complication", "fileprovider", "mdm", "liveactivity", "pushtotalk", "":
	default:
		return Fault{http.StatusBadRequest, "InvalidPushType"}, false
	}
	if p := h.Get("apns-priority"); p != "" && p != "5" && p != "10" && p != "1" {
		return Fault{http.StatusBadRequest, "BadPriority"}, false
	}
	if e := h.Get("apns-expiration"); e != "" {
		if _, err := strconv.ParseInt(e, 10, 64); err != nil {
			return Fault{http.StatusBadRequest, "BadExpirationDate"}, false
		}
	}
	if id := h.Get("apns-id"); id != "" {
		if _, err := uuid.Parse(id); err != nil {
			return Fault{http.StatusBadRequest, "BadMessageId"}, false
		}
	}
	if c := h.Get("apns-collapse-id"); len(c) > 64 {
		return Fault{http.StatusBadRequest, "BadCollapseId"}, false
	}
	return Fault{}, true
}

// NewKey returns a fresh P-256 signing key as a .p8 file holds it (PEM,
// PKCS #8) and its public half, for a Config.
func NewKey() ([]byte, *ecdsa.PublicKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), &k.PublicKey, nil
}
