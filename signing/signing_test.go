package signing_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/signing"
	"github.com/chime-dev/chime/store"
)

func setup(t *testing.T, cfg signing.Config) (*testenv.Env, *seal.Keyring, *signing.Keys) {
	env := testenv.New(t)
	spec, err := seal.NewKey("k1")
	require.NoError(t, err)
	ring, err := seal.Parse(spec)
	require.NoError(t, err)
	cfg.Prefix = env.Prefix
	return env, ring, signing.New(cfg, env.DB, env.Redis, ring, env.Log)
}

func newApp(t *testing.T, env *testenv.Env) int64 {
	app := store.App{Name: "a"}
	require.NoError(t, env.DB.Create(&app).Error)
	return app.ID
}

// Injected: app A's sealed secret copied into app B's key row, and keys
// without CHIME_SECRET_KEYS. Checked: the stored secret is sealed (the
// plaintext appears nowhere in the row), the moved value does not open as
// B's key, and without a keyring nothing opens or is made.
func TestKeysAreSealedAndBoundToTheirRow(t *testing.T) {
	env, ring, keys := setup(t, signing.Config{})
	ctx := context.Background()
	now := time.Now()
	a, b := newApp(t, env), newApp(t, env)
	ka, err := keys.Current(ctx, a, now)
	require.NoError(t, err)
	kb, err := keys.Current(ctx, b, now)
	require.NoError(t, err)
	var row store.SigningKey
	require.NoError(t, env.DB.First(&row, "id = ?", ka.ID).Error)
	require.True(t, seal.IsSealed(row.Secret))
	require.NotContains(t, row.Secret, ka.Secret[4:])

	require.NoError(t, env.DB.Model(&store.SigningKey{}).Where("id = ?", kb.ID).Update("secret", row.Secret).Error)
	fresh := signing.New(signing.Config{Prefix: env.Prefix}, env.DB, env.Redis, nil, env.Log)
	_, err = fresh.Lookup(ctx, ka.ID, now)
	require.ErrorIs(t, err, signing.ErrNoKeyring)
	_, err = fresh.Current(ctx, newApp(t, env), now)
	require.ErrorIs(t, err, signing.ErrNoKeyring)

	other := signing.New(signing.Config{Prefix: env.Prefix}, env.DB, env.Redis, ring, env.Log)
	_, err = other.Lookup(ctx, kb.ID, now)
	require.ErrorIs(t, err, seal.ErrCorrupt)
	got, err := other.Lookup(ctx, ka.ID, now)
	require.NoError(t, err)
	require.Equal(t, ka.Secret, got.Secret)
}

// Injected: eight first uses of one app's key at once. Checked: they all
// get the same key, and one is stored.
func TestFirstKeyIsMadeOnce(t *testing.T) {
	env, _, keys := setup(t, signing.Config{})
	app := newApp(t, env)
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := keys.Current(context.Background(), app, time.Now())
			if err == nil {
				ids[i] = k.ID
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		require.Equal(t, ids[0], id)
	}
	var n int64
	require.NoError(t, env.DB.Model(&store.SigningKey{}).Where("app_id = ?", app).Count(&n).Error)
	require.EqualValues(t, 1, n)
}

// Injected: a cache of 2 keys with a TTL of one minute, three keys looked
// up, then every row deleted. Checked: the two most recent are still served
// from memory until the TTL ends, the first was evicted, and an ID of the
// wrong form is not found.
func TestLookupCacheIsBounded(t *testing.T) {
	env, _, keys := setup(t, signing.Config{CacheSize: 2, CacheTTL: time.Minute})
	ctx := context.Background()
	now := time.Now()
	var ids []string
	for range 3 {
		k, err := keys.Current(ctx, newApp(t, env), now)
		require.NoError(t, err)
		_, err = keys.Lookup(ctx, k.ID, now)
		require.NoError(t, err)
		ids = append(ids, k.ID)
	}
	require.NoError(t, env.DB.Where("1 = 1").Delete(&store.SigningKey{}).Error)
	for _, id := range ids[1:] {
		_, err := keys.Lookup(ctx, id, now.Add(time.Minute-time.Millisecond))
		require.NoError(t, err, "cached")
	}
	_, err := keys.Lookup(ctx, ids[0], now)
	require.ErrorIs(t, err, signing.ErrNotFound, "evicted")
	_, err = keys.Lookup(ctx, ids[1], now.Add(time.Minute))
	require.ErrorIs(t, err, signing.ErrNotFound, "past the TTL")
	_, err = keys.Lookup(ctx, "sk_../../etc", now)
	require.ErrorIs(t, err, signing.ErrNotFound)
}
