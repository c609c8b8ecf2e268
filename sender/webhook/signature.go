package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Signatures follow the Standard Webhooks specification
// (https://www.standardwebhooks.com): every request carries webhook-id (the
// same for every attempt at one message), webhook-timestamp (Unix seconds)
// and webhook-signature ("v1," + base64 of HMAC-SHA256 over
// "<id>.<timestamp>.<body>"), keyed with the endpoint's secret. A secret is
// written "whsec_" + base64 of 24 to 64 random bytes.

// SecretPrefix starts every signing secret.
const SecretPrefix = "whsec_"

// MaxSecretLen is the length of the longest secret: the prefix and the
// padded base64 of 64 bytes. (The base64 decoder skips line breaks; a
// secret written with them is refused rather than stored at any length.)
const MaxSecretLen = len(SecretPrefix) + (64+2)/3*4

// Signer signs webhook requests with one endpoint's secret.
type Signer struct{ key []byte }

// ParseSecret checks a "whsec_..." secret and returns its signer.
func ParseSecret(secret string) (*Signer, error) {
	raw, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, errors.New("webhook secret must start with " + SecretPrefix)
	}
	if len(secret) > MaxSecretLen || strings.ContainsAny(raw, "\r\n") {
		return nil, errors.New("webhook secret must be whsec_ followed by base64 of at most 64 bytes, on one line")
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return nil, errors.New("webhook secret must be whsec_ followed by base64")
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, errors.New("webhook secret must hold 24 to 64 bytes")
	}
	return &Signer{key: key}, nil
}

// NewSecret returns a fresh random secret of 32 bytes.
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// Signature returns the webhook-signature value for a message.
func (s *Signer) Signature(id string, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, ts.Unix(), 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Sign sets the three Standard Webhooks headers on h.
func (s *Signer) Sign(h http.Header, id string, ts time.Time, body []byte) {
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("webhook-signature", s.Signature(id, ts, body))
}
