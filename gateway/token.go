package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chime-dev/chime/signing"
	"github.com/chime-dev/chime/userid"
)

// Claims are what a client token says: the app, the user (the JWT subject),
// when it was issued and until when it is valid.
type Claims struct {
	App int64 `json:"app"`
	jwt.RegisteredClaims
	// KeyID is the kid of the key that signed the token (from its header).
	KeyID string `json:"-"`
}

// DefaultMaxTokenLifetime is the longest a token may live: its exp at most
// this long after its iat, and after the moment it is presented.
const DefaultMaxTokenLifetime = 24 * time.Hour

// clockSkew is how far in the future a token's iat may be: the app
// backend's clock may run ahead of the gateway's.
const clockSkew = time.Minute

// IssueToken returns a token for user of key's app, issued at now and valid
// for ttl, signed with key (HS256, the key's ID as kid). App backends
// issue these (with this function or any JWT library) and hand them to
// their clients.
func IssueToken(key signing.Key, user string, ttl time.Duration, now time.Time) (string, error) {
	c := Claims{App: key.App, RegisteredClaims: jwt.RegisteredClaims{
		Subject: user, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	t.Header["kid"] = key.ID
	s, err := t.SignedString([]byte(key.Secret))
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// Token errors, as told to the client.
var (
	ErrTokenMissing = errors.New("a token is required: Authorization: Bearer <token> or ?token=<token>")
	ErrTokenExpired = errors.New("the token has expired")
	ErrTokenInvalid = errors.New("the token is not valid")
	// ErrKeysUnavailable: the signing key could not be read (MySQL is
	// unreachable, say); the client should try again shortly.
	ErrKeysUnavailable = errors.New("the token's signing key cannot be read right now; try again")
)

// KeyFinder finds signing keys by ID.
type KeyFinder interface {
	Lookup(ctx context.Context, id string, now time.Time) (signing.Key, error)
}

var _ KeyFinder = (*signing.Keys)(nil)

// VerifyToken checks a token: HS256 only, signed by the key its kid names,
// that key one of the app's the token claims and still valid; iat and exp
// required, iat not in the future, exp at most maxLifetime after iat and
// after now; app positive; sub a valid user ID.
func VerifyToken(ctx context.Context, keys KeyFinder, token string, now time.Time, maxLifetime time.Duration) (Claims, error) {
	if token == "" {
		return Claims{}, ErrTokenMissing
	}
	var c Claims
	var keyErr error // why the key or a claim was refused, told as it is
	refuse := func(err error) (any, error) { keyErr = err; return nil, err }
	_, err := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	).ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		// The claims are not verified yet, but what is wrong with their
		// form is refused before the key is looked up.
		switch msg := userid.Check(c.Subject); {
		case c.App <= 0:
			return refuse(fmt.Errorf("%w: app (a positive app ID) is required", ErrTokenInvalid))
		case msg != "":
			return refuse(fmt.Errorf("%w: sub %s", ErrTokenInvalid, msg))
		case c.IssuedAt == nil:
			return refuse(fmt.Errorf("%w: iat is required", ErrTokenInvalid))
		}
		kid, _ := t.Header["kid"].(string)
		if !signing.ValidID(kid) {
			return refuse(fmt.Errorf("%w: the header names no signing key (kid); sign with the app's signing key", ErrTokenInvalid))
		}
		key, err := keys.Lookup(ctx, kid, now)
		switch {
		case errors.Is(err, signing.ErrNotFound) || err == nil && key.App != c.App:
			// One answer for both: a kid of another app is no more use
			// than an unknown one.
			return refuse(fmt.Errorf("%w: kid %s names no signing key of app %d", ErrTokenInvalid, kid, c.App))
		case err != nil:
			return refuse(fmt.Errorf("%w: %w", ErrKeysUnavailable, err))
		case !key.Valid(now):
			return refuse(fmt.Errorf("%w: its signing key %s expired at %s; sign with the app's current key", ErrTokenInvalid, kid, key.ExpiresAt.Format(time.RFC3339)))
		}
		c.KeyID = kid
		return []byte(key.Secret), nil
	})
	switch {
	case keyErr != nil:
		return Claims{}, keyErr
	case errors.Is(err, jwt.ErrTokenExpired):
		return Claims{}, ErrTokenExpired
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return Claims{}, fmt.Errorf("%w: exp is required", ErrTokenInvalid)
	case err != nil:
		return Claims{}, ErrTokenInvalid
	case c.IssuedAt.After(now.Add(clockSkew)):
		return Claims{}, fmt.Errorf("%w: iat is in the future", ErrTokenInvalid)
	case c.ExpiresAt.Sub(c.IssuedAt.Time) > maxLifetime || c.ExpiresAt.Sub(now) > maxLifetime:
		return Claims{}, fmt.Errorf("%w: exp may be at most %s after iat and after now", ErrTokenInvalid, maxLifetime)
	}
	return c, nil
}
