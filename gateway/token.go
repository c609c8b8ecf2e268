package gateway

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are what a client token says: the app, the user (the JWT subject)
// and until when it is valid.
type Claims struct {
	App int64 `json:"app"`
	jwt.RegisteredClaims
}

// IssueToken returns a token for user of app, valid for ttl from now, signed
// with HMAC-SHA256 under secret. App backends issue these (with this
// function or any JWT library) and hand them to their clients.
func IssueToken(secret []byte, app int64, user string, ttl time.Duration, now time.Time) (string, error) {
	c := Claims{App: app, RegisteredClaims: jwt.RegisteredClaims{
		Subject: user, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
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
)

// VerifyToken checks a token's signature (HS256 only), expiry (required)
// and claims.
func VerifyToken(secret []byte, token string, now time.Time) (Claims, error) {
	if token == "" {
		return Claims{}, ErrTokenMissing
	}
	var c Claims
	_, err := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	).ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return secret, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Claims{}, ErrTokenExpired
	case err != nil:
		return Claims{}, ErrTokenInvalid
	case c.App <= 0 || c.Subject == "" || len(c.Subject) > 191:
		return Claims{}, fmt.Errorf("%w: app and sub (1-191 bytes) are required", ErrTokenInvalid)
	}
	return c, nil
}
