package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/gateway"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/signing"
	"github.com/chime-dev/chime/store"
)

// setupKeys is setup with signing keys sealed under a fresh keyring; the
// keys are returned as a gateway has them.
func setupKeys(t *testing.T, cfg api.Config) (*bundle, *signing.Keys) {
	t.Helper()
	spec, err := seal.NewKey("k1")
	require.NoError(t, err)
	ring, err := seal.Parse(spec)
	require.NoError(t, err)
	var gw *signing.Keys
	b := setupEnv(t, func(env *testenv.Env) api.Config {
		cfg.SigningKeys = signing.New(signing.Config{Prefix: env.Prefix}, env.DB, env.Redis, ring, env.Log)
		gw = signing.New(signing.Config{Prefix: env.Prefix}, env.DB, env.Redis, ring, env.Log)
		return cfg
	})
	return b, gw
}

type keyList struct {
	Keys []struct {
		KID       string     `json:"kid"`
		Secret    *string    `json:"secret"`
		CreatedAt time.Time  `json:"created_at"`
		ExpiresAt *time.Time `json:"expires_at"`
	}
}

// The token route signs with the app's current key, made on first use: the
// gateway accepts the token for the key's app (and no other), it lives
// TokenTTL, and its kid is the app's listed key. A bad user ID is refused.
func TestIssueToken(t *testing.T) {
	b, keys := setupKeys(t, api.Config{TokenTTL: 10 * time.Minute})
	var out struct {
		Token     string
		KID       string    `json:"kid"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	requireJSON(t, b.as(http.MethodPost, "/v1/users/alice/token", nil), http.StatusCreated, &out)
	c, err := gateway.VerifyToken(context.Background(), keys, out.Token, time.Now(), gateway.DefaultMaxTokenLifetime)
	require.NoError(t, err)
	require.Equal(t, b.appA.ID, c.App)
	require.Equal(t, "alice", c.Subject)
	require.Equal(t, out.KID, c.KeyID)
	require.Equal(t, 10*time.Minute, c.ExpiresAt.Sub(c.IssuedAt.Time))
	require.WithinDuration(t, time.Now().Add(10*time.Minute), out.ExpiresAt, 5*time.Second)
	var list keyList
	requireJSON(t, b.as(http.MethodGet, "/v1/signing-keys", nil), http.StatusOK, &list)
	require.Len(t, list.Keys, 1)
	require.Equal(t, out.KID, list.Keys[0].KID)

	kidA := out.KID
	requireJSON(t, b.req(http.MethodPost, "/v1/users/alice/token", b.keyB, nil), http.StatusCreated, &out)
	require.NotEqual(t, kidA, out.KID, "each app has its own key")
	c, err = gateway.VerifyToken(context.Background(), keys, out.Token, time.Now(), gateway.DefaultMaxTokenLifetime)
	require.NoError(t, err)
	require.Equal(t, b.appB.ID, c.App, "a key gets tokens for its own app only")
	requireProblem(t, b.as(http.MethodPost, "/v1/users/a%20b/token", nil), http.StatusUnprocessableEntity, "user_id")
}

// Without CHIME_SECRET_KEYS no key can be made: the token and rotation
// routes answer 503 naming the setting, and nothing is stored.
func TestSigningKeysNeedSecretKeys(t *testing.T) {
	b := setup(t)
	requireProblem(t, b.as(http.MethodPost, "/v1/users/alice/token", nil), http.StatusServiceUnavailable, "CHIME_SECRET_KEYS")
	requireProblem(t, b.as(http.MethodPost, "/v1/signing-keys", nil), http.StatusServiceUnavailable, "CHIME_SECRET_KEYS")
	var n int64
	require.NoError(t, b.env.DB.Model(&store.SigningKey{}).Count(&n).Error)
	require.Zero(t, n)
}

// Rotation through the API: the new key's secret is shown once (never in
// the listing, and sealed at rest), the old key stays listed until the
// overlap asked for, tokens are signed with the newest key, another app
// sees none of it, bad overlaps are refused with 422 naming the field, more
// than MaxInForce keys in force with 409, and an overlap of 0s ends every
// other key at once.
func TestRotateSigningKeys(t *testing.T) {
	b, keys := setupKeys(t, api.Config{})
	var list keyList
	requireJSON(t, b.as(http.MethodGet, "/v1/signing-keys", nil), http.StatusOK, &list)
	require.Empty(t, list.Keys)

	var first signing.Key
	requireJSON(t, b.as(http.MethodPost, "/v1/signing-keys", nil), http.StatusCreated, &first)
	require.True(t, signing.ValidID(first.ID), first.ID)
	require.True(t, strings.HasPrefix(first.Secret, "sks_"), first.Secret)
	require.Len(t, first.Secret, 47)
	require.Nil(t, first.ExpiresAt)
	var row store.SigningKey
	require.NoError(t, b.env.DB.First(&row, "id = ?", first.ID).Error)
	require.True(t, seal.IsSealed(row.Secret), "sealed at rest")
	require.NotContains(t, row.Secret, first.Secret[4:])

	before := time.Now()
	var second signing.Key
	requireJSON(t, b.as(http.MethodPost, "/v1/signing-keys", map[string]string{"overlap": "1h"}), http.StatusCreated, &second)
	res := b.as(http.MethodGet, "/v1/signing-keys", nil)
	require.NotContains(t, string(res.Body), "secret")
	requireJSON(t, res, http.StatusOK, &list)
	require.Len(t, list.Keys, 2)
	require.Equal(t, second.ID, list.Keys[0].KID)
	require.Nil(t, list.Keys[0].ExpiresAt)
	require.Equal(t, first.ID, list.Keys[1].KID)
	require.WithinDuration(t, before.Add(time.Hour), *list.Keys[1].ExpiresAt, 5*time.Second)
	var tok struct{ Token string }
	requireJSON(t, b.as(http.MethodPost, "/v1/users/alice/token", nil), http.StatusCreated, &tok)
	c, err := gateway.VerifyToken(context.Background(), keys, tok.Token, time.Now(), gateway.DefaultMaxTokenLifetime)
	require.NoError(t, err)
	require.Equal(t, second.ID, c.KeyID, "tokens are signed with the newest key")
	requireJSON(t, b.req(http.MethodGet, "/v1/signing-keys", b.keyB, nil), http.StatusOK, &list)
	require.Empty(t, list.Keys, "another app's keys")

	for _, tc := range []struct {
		body   any
		status int
		want   string
	}{
		{map[string]string{"overlap": "25h"}, http.StatusUnprocessableEntity, "overlap: overlap out of bounds: the overlap must be from 0s to 24h0m0s"},
		{map[string]string{"overlap": "-1s"}, http.StatusUnprocessableEntity, "overlap"},
		{map[string]string{"overlap": "soon"}, http.StatusUnprocessableEntity, "overlap: must be a duration"},
		{map[string]any{"overlap": 60}, http.StatusBadRequest, "overlap"},
		{map[string]string{"ttl": "1h"}, http.StatusBadRequest, "ttl"},
	} {
		requireProblem(t, b.as(http.MethodPost, "/v1/signing-keys", tc.body), tc.status, tc.want)
	}
	requireJSON(t, b.as(http.MethodGet, "/v1/signing-keys", nil), http.StatusOK, &list)
	require.Len(t, list.Keys, 2, "refused rotations change nothing")

	for range signing.MaxInForce - 2 {
		requireJSON(t, b.as(http.MethodPost, "/v1/signing-keys", nil), http.StatusCreated, nil)
	}
	requireProblem(t, b.as(http.MethodPost, "/v1/signing-keys", nil), http.StatusConflict, "5 signing keys in force", `"overlap": "0s"`)
	var last signing.Key
	requireJSON(t, b.as(http.MethodPost, "/v1/signing-keys", map[string]string{"overlap": "0s"}), http.StatusCreated, &last)
	requireJSON(t, b.as(http.MethodGet, "/v1/signing-keys", nil), http.StatusOK, &list)
	require.Len(t, list.Keys, 1)
	require.Equal(t, last.ID, list.Keys[0].KID)
}
