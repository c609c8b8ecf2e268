// Package fcmtest is a local Firebase Cloud Messaging server for tests and
// benchmarks. It speaks the HTTP v1 API and Google's OAuth 2.0 service
// account flow:
//
//   - POST /token takes a JWT-bearer grant (an RS256 assertion signed with
//     the service account's key, iss = its client_email, aud = this URL,
//     scope firebase.messaging) and answers with an access token;
//   - POST /v1/projects/{project}/messages:send takes
//     {"message":{"token":...,"notification":{...},"data":{...},"android":{...}}}
//     with "Authorization: Bearer <access token>" and answers
//     {"name":"projects/{project}/messages/{id}"} or an error document as
//     FCM writes them: {"error":{"code","message","status","details":[{
//     "@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError",
//     "errorCode":...}]}}.
//
// Errors are injected per registration token with Fail (the next requests
// get them, in order) or Unregister (every later request gets
// UNREGISTERED).
package fcmtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chime-dev/chime/internal/faults"
)

// Fault is an error answer to inject.
type Fault struct {
	HTTP       int
	Status     string // google.rpc status: NOT_FOUND, INVALID_ARGUMENT, ...
	ErrorCode  string // FcmError errorCode: UNREGISTERED, QUOTA_EXCEEDED, ...
	Message    string
	RetryAfter int // seconds, sent as Retry-After when positive
}

// The answers FCM gives that the channel must handle.
var (
	Unregistered    = Fault{404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.", 0}
	InvalidArgument = Fault{400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token", 0}
	QuotaExceeded   = Fault{429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded for quota metric 'Send requests'", 1}
	Unavailable     = Fault{503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable.", 0}
	Internal        = Fault{500, "INTERNAL", "INTERNAL", "Internal error encountered.", 0}
)

// Message is a message the server accepted.
type Message struct {
	Token        string            `json:"token"`
	Notification map[string]string `json:"notification"`
	Data         map[string]string `json:"data"`
	Android      map[string]any    `json:"android"`
}

// Server is a running local FCM.
type Server struct {
	// URL is the server's base URL; the FCM endpoint is URL+"/v1".
	URL     string
	project string
	key     *rsa.PrivateKey
	email   string
	srv     *httptest.Server
	discard bool
	// Delay is slept before answering each send, to stretch deliveries out
	// in tests that kill a worker mid-group. Set it before sending.
	Delay time.Duration

	faults   faults.Tokens[Fault]
	mu       sync.Mutex
	access   map[string]bool
	messages map[string][]Message
	accepted int
	lastAt   time.Time // when the last push was accepted
	rejected int
	grants   int
}

// New starts a server for project on a loopback port. With discard it keeps
// counts only (for benchmarks).
func New(project string, discard bool) (*Server, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	s := &Server{project: project, key: key, email: "chime@" + project + ".iam.gserviceaccount.com", discard: discard,
		access: map[string]bool{}, messages: map[string][]Message{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("POST /v1/projects/{project}/{op}", s.send)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Endpoint is the FCM v1 base URL to configure.
func (s *Server) Endpoint() string { return s.URL + "/v1" }

// ServiceAccount returns a service account JSON key whose token_uri is this
// server.
func (s *Server) ServiceAccount() []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(s.key)
	b, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     s.project,
		"private_key_id": "local-key-1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   s.email,
		"client_id":      "1",
		"token_uri":      s.URL + "/token",
	})
	return b
}

// Fail makes the next len(faults) requests for token get faults, in order.
func (s *Server) Fail(token string, faults ...Fault) {
	s.faults.Fail(token, faults...)
}

// Unregister makes every later request for token get UNREGISTERED.
func (s *Server) Unregister(token string) {
	s.faults.Unregister(token)
}

// Messages returns the messages accepted for token.
func (s *Server) Messages(token string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages[token]...)
}

// Counts returns the messages accepted and rejected, and the access tokens
// granted.
func (s *Server) Counts() (accepted, rejected, grants int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted, s.rejected, s.grants
}

// LastAccepted is when the server last accepted a push (zero before the
// first): a load run's fire-to-last-delivery for the channel.
func (s *Server) LastAccepted() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAt
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if r.ParseForm() != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		writeOAuthError(w, "unsupported_grant_type", "grant_type must be urn:ietf:params:oauth:grant-type:jwt-bearer")
		return
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(r.PostForm.Get("assertion"), claims, func(*jwt.Token) (any, error) { return &s.key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(s.email), jwt.WithAudience(s.URL+"/token"),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		writeOAuthError(w, "invalid_grant", "Invalid JWT Signature: "+err.Error())
		return
	}
	if scope, _ := claims["scope"].(string); !strings.Contains(scope, "https://www.googleapis.com/auth/firebase.messaging") {
		writeOAuthError(w, "invalid_scope", "the firebase.messaging scope is required")
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	tok := "ya29.local-" + hex.EncodeToString(b[:])
	s.mu.Lock()
	s.access[tok] = true
	s.grants++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "expires_in": 3599, "token_type": "Bearer"})
}

func writeOAuthError(w http.ResponseWriter, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (s *Server) reject(w http.ResponseWriter, f Fault) {
	s.mu.Lock()
	s.rejected++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(f.RetryAfter))
	}
	w.WriteHeader(f.HTTP)
	e := map[string]any{"code": f.HTTP, "message": f.Message, "status": f.Status}
	if f.ErrorCode != "" {
		e["details"] = []map[string]string{{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": f.ErrorCode}}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}

func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	if s.Delay > 0 {
		time.Sleep(s.Delay)
	}
	if r.PathValue("op") != "messages:send" {
		s.reject(w, Fault{HTTP: 404, Status: "NOT_FOUND", Message: "no such method"})
		return
	}
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	ok := s.access[bearer]
	s.mu.Unlock()
	if !ok {
		s.reject(w, Fault{HTTP: 401, Status: "UNAUTHENTICATED", ErrorCode: "THIRD_PARTY_AUTH_ERROR",
			Message: "Request had invalid authentication credentials. Expected OAuth 2 access token."})
		return
	}
	if r.PathValue("project") != s.project {
		s.reject(w, Fault{HTTP: 403, Status: "PERMISSION_DENIED", ErrorCode: "SENDER_ID_MISMATCH", Message: "Permission denied on the project"})
		return
	}
	var req struct {
		ValidateOnly bool     `json:"validate_only"`
		Message      *Message `json:"message"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || req.Message == nil {
		s.reject(w, Fault{HTTP: 400, Status: "INVALID_ARGUMENT", ErrorCode: "INVALID_ARGUMENT", Message: "Invalid JSON payload received."})
		return
	}
	m := req.Message
	if m.Token == "" || strings.ContainsAny(m.Token, " \t\n") {
		s.reject(w, InvalidArgument)
		return
	}
	if ttl, ok := m.Android["ttl"].(string); ok && !strings.HasSuffix(ttl, "s") {
		s.reject(w, Fault{HTTP: 400, Status: "INVALID_ARGUMENT", ErrorCode: "INVALID_ARGUMENT", Message: "Invalid value at 'message.android.ttl'"})
		return
	}
	if f, ok := s.faults.Next(m.Token, Unregistered); ok {
		s.reject(w, f)
		return
	}
	s.mu.Lock()
	s.accepted++
	s.lastAt = time.Now()
	n := s.accepted
	if !s.discard {
		s.messages[m.Token] = append(s.messages[m.Token], *m)
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(map[string]string{"name": fmt.Sprintf("projects/%s/messages/%d%d", s.project, time.Now().UnixNano(), n)})
}
