package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/store"
)

// A database from before 0007: the key lifecycle columns dropped and the
// migration unrecorded, with a key stored. Checked: the migration adds the
// columns and the old key still works, unnamed; revocation then works on it.
func TestMigrateAPIKeyLifecycle(t *testing.T) {
	env := testenv.New(t)
	ctx := ctxT(t)
	m := env.DB.Migrator()
	for _, col := range []string{"Name", "LastUsedAt", "ExpiresAt", "RevokedAt"} {
		require.NoError(t, m.DropColumn(&store.APIKey{}, col))
	}
	require.NoError(t, env.DB.Exec("DELETE FROM schema_migrations WHERE id = '0007_api_key_lifecycle'").Error)
	key := "chk_" + "0123456789abcdef0123456789abcdef0123456789abcdef"
	require.NoError(t, env.DB.Exec("INSERT INTO apps (name, created_at) VALUES ('old', NOW())").Error)
	require.NoError(t, env.DB.Exec("INSERT INTO api_keys (app_id, hash, prefix, created_at) SELECT id, ?, ?, NOW() FROM apps WHERE name = 'old'",
		store.HashKey(key), key[:store.KeyPrefixLen]).Error)

	require.NoError(t, store.Migrate(ctx, env.DB))
	require.Contains(t, migrationIDs(t, env.DB), "0007_api_key_lifecycle")
	now := time.Now()
	k, err := store.ActiveKey(ctx, env.DB, store.HashKey(key), now)
	require.NoError(t, err)
	require.Empty(t, k.Name)
	require.Nil(t, k.RevokedAt)

	k, err = store.RevokeKey(ctx, env.DB, k.AppID, k.ID, now, 0)
	require.NoError(t, err)
	require.NotNil(t, k.RevokedAt)
	_, err = store.ActiveKey(ctx, env.DB, store.HashKey(key), now)
	require.ErrorIs(t, err, store.ErrNotFound)
}
