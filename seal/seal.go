// Package seal encrypts the secrets Chime must be able to read back (web
// device signing secrets, per-app gateway signing keys) before they are
// stored, with AES-256-GCM under keys the operator supplies
// (CHIME_SECRET_KEYS).
//
// A sealed value names the key that sealed it, so keys rotate without a
// stop: put a new key first in the list (it seals from then on), keep the
// old ones after it (they still open what they sealed), and drop an old key
// once nothing sealed with it is left. Each value is bound to where it is
// stored by additional data (for example "device:<app>:<user>:<id>"), so a
// ciphertext copied into another row does not open there.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Prefix starts every sealed value; a stored value without it was written
// before secrets were sealed and is read as it is.
const Prefix = "sealed:v1:"

// KeySize is the length of a key: AES-256.
const KeySize = 32

// Errors callers branch on.
var (
	// ErrNoKeys: no CHIME_SECRET_KEYS are configured, so nothing can be
	// sealed or opened.
	ErrNoKeys = errors.New("no secret keys are configured (CHIME_SECRET_KEYS)")
	// ErrUnknownKey: the value was sealed with a key that is not configured.
	ErrUnknownKey = errors.New("the value was sealed with a key that is not configured")
	// ErrCorrupt: the value does not open (altered, truncated, or moved from
	// where it was sealed).
	ErrCorrupt = errors.New("the sealed value does not open")
)

// Keyring seals with its first key and opens with any of them. A nil
// *Keyring has no keys: Seal and Open of sealed values return ErrNoKeys.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
}

// Parse reads a key list: "id=base64key[,id=base64key...]", where each key
// is 32 bytes in standard or URL-safe base64 and each ID is 1 to 16 letters,
// digits, '-' or '_'. The first key seals. An empty spec gives a nil
// Keyring.
func Parse(spec string) (*Keyring, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	k := &Keyring{aeads: make(map[string]cipher.AEAD)}
	for i, entry := range strings.Split(spec, ",") {
		id, b64, ok := strings.Cut(strings.TrimSpace(entry), "=")
		if !ok || !validID(id) {
			return nil, fmt.Errorf("key %d: want id=base64key with an id of 1-16 letters, digits, '-' or '_'", i+1)
		}
		raw, err := decodeKey(b64)
		if err != nil || len(raw) != KeySize {
			return nil, fmt.Errorf("key %q: want %d bytes in base64", id, KeySize)
		}
		if _, dup := k.aeads[id]; dup {
			return nil, fmt.Errorf("key %q is listed twice", id)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", id, err)
		}
		k.aeads[id] = aead
		if i == 0 {
			k.current = id
		}
	}
	return k, nil
}

// decodeKey accepts base64 with or without padding, standard or URL-safe.
func decodeKey(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawStdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawURLEncoding.DecodeString(s)
}

func validID(id string) bool {
	if id == "" || len(id) > 16 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// NewKey returns a fresh random key in the form Parse reads, with the given
// ID: what an operator puts in CHIME_SECRET_KEYS.
func NewKey(id string) (string, error) {
	if !validID(id) {
		return "", fmt.Errorf("key id %q: want 1-16 letters, digits, '-' or '_'", id)
	}
	var b [KeySize]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return id + "=" + base64.StdEncoding.EncodeToString(b[:]), nil
}

// Current is the ID of the key that seals; "" for a nil Keyring.
func (k *Keyring) Current() string {
	if k == nil {
		return ""
	}
	return k.current
}

// Seal encrypts plaintext under the current key, bound to aad.
func (k *Keyring) Seal(plaintext, aad []byte) (string, error) {
	if k == nil {
		return "", ErrNoKeys
	}
	aead := k.aeads[k.current]
	buf := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	buf = aead.Seal(buf, buf, plaintext, aad)
	return Prefix + k.current + ":" + base64.RawURLEncoding.EncodeToString(buf), nil
}

// Open decrypts a value Seal made with any configured key and the same aad.
// A value without Prefix was stored before sealing and is returned as it
// is.
func (k *Keyring) Open(value string, aad []byte) ([]byte, error) {
	rest, sealed := strings.CutPrefix(value, Prefix)
	if !sealed {
		return []byte(value), nil
	}
	if k == nil {
		return nil, ErrNoKeys
	}
	id, b64, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, ErrCorrupt
	}
	aead, ok := k.aeads[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKey, id)
	}
	raw, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrCorrupt
	}
	out, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], aad)
	if err != nil {
		return nil, ErrCorrupt
	}
	return out, nil
}

// IsSealed tells whether a stored value was sealed.
func IsSealed(value string) bool { return strings.HasPrefix(value, Prefix) }

// KeyOf returns the ID of the key that sealed value, or "" for a value
// stored before sealing: what a re-sealing pass after a rotation looks for.
func KeyOf(value string) string {
	rest, ok := strings.CutPrefix(value, Prefix)
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, ":")
	return id
}

// SealedLen is the length of the sealed form of a plaintext of n bytes:
// what a column holding sealed values must fit.
func SealedLen(n int, keyID string) int {
	return len(Prefix) + len(keyID) + 1 + base64.RawURLEncoding.EncodedLen(12+n+16)
}
