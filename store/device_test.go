package store_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/sender/webhook"
	"github.com/chime-dev/chime/store"
)

// newKey returns a fresh CHIME_SECRET_KEYS entry.
func newKey(t *testing.T, id string) string {
	t.Helper()
	k, err := seal.NewKey(id)
	require.NoError(t, err)
	return k
}

func parseKeys(t *testing.T, spec string) *seal.Keyring {
	t.Helper()
	k, err := seal.Parse(spec)
	require.NoError(t, err)
	return k
}

// A database whose devices.secret is still the 200 bytes of before (the
// column narrowed back and 0008 unrecorded) is migrated again. Checked: the
// column is widened to 255 and holds the sealed form of the longest secret
// under the longest key ID.
func TestMigrationWidensDeviceSecret(t *testing.T) {
	env := testenv.New(t)
	ctx := ctxT(t)
	require.NoError(t, env.DB.Exec("ALTER TABLE devices MODIFY secret varchar(200) NOT NULL DEFAULT ''").Error)
	require.NoError(t, env.DB.Exec("DELETE FROM schema_migrations WHERE id = ?", "0008_device_secret_sealed").Error)
	require.NoError(t, store.Migrate(ctx, env.DB))

	cols, err := env.DB.Migrator().ColumnTypes(&store.Device{})
	require.NoError(t, err)
	for _, c := range cols {
		if c.Name() == "secret" {
			n, ok := c.Length()
			require.True(t, ok)
			require.EqualValues(t, 255, n)
		}
	}
	longest := strings.Repeat("k", 16)
	require.LessOrEqual(t, seal.SealedLen(webhook.MaxSecretLen, longest), 255)
	k := parseKeys(t, newKey(t, longest))
	secret := webhook.SecretPrefix + strings.Repeat("A", webhook.MaxSecretLen-len(webhook.SecretPrefix))
	sealed, err := k.Seal([]byte(secret), store.DeviceSecretAAD(1, "u", "d"))
	require.NoError(t, err)
	require.Len(t, sealed, seal.SealedLen(webhook.MaxSecretLen, longest))
	require.NoError(t, env.DB.Create(&store.Device{AppID: 1, UserID: "u", DeviceID: "d", Platform: store.PlatformWeb, Token: "https://x.example/h", Secret: sealed}).Error)
}

// After a key rotation ("new" first, "old" still listed), re-sealing in
// batches of two rewrites a plaintext secret stored before sealing and one
// sealed with "old" under "new"; one sealed with "new" is not rewritten,
// one sealed with a key no longer configured is left and counted, and a
// device without a secret is untouched. Every secret opens to what it was,
// in its own row, and a second pass has nothing left to do.
func TestResealDeviceSecrets(t *testing.T) {
	env := testenv.New(t)
	ctx := ctxT(t)
	oldSpec := newKey(t, "old")
	old, gone := parseKeys(t, oldSpec), parseKeys(t, newKey(t, "gone"))
	// The keyring after the rotation: "new" first, "old" after it.
	rotated := parseKeys(t, newKey(t, "new")+","+oldSpec)

	plain := map[string]string{"legacy": webhook.NewSecret(), "byold": webhook.NewSecret(), "bynew": webhook.NewSecret(), "bygone": webhook.NewSecret()}
	sealWith := func(k *seal.Keyring, user string) string {
		v, err := k.Seal([]byte(plain[user]), store.DeviceSecretAAD(7, user, "browser"))
		require.NoError(t, err)
		return v
	}
	devs := []store.Device{
		{UserID: "legacy", Secret: plain["legacy"]},
		{UserID: "byold", Secret: sealWith(old, "byold")},
		{UserID: "bynew", Secret: sealWith(rotated, "bynew")},
		{UserID: "bygone", Secret: sealWith(gone, "bygone")},
		{UserID: "phone", Platform: store.PlatformIOS, Token: strings.Repeat("ab", 32)},
	}
	for i := range devs {
		devs[i].AppID, devs[i].DeviceID = 7, "browser"
		if devs[i].Platform == "" {
			devs[i].Platform, devs[i].Token = store.PlatformWeb, "https://push.example.com/"+devs[i].UserID
		}
	}
	require.NoError(t, env.DB.Create(&devs).Error)
	read := func() map[string]store.Device {
		var rows []store.Device
		require.NoError(t, env.DB.Find(&rows).Error)
		out := map[string]store.Device{}
		for _, d := range rows {
			out[d.UserID] = d
		}
		return out
	}
	before := read()

	resealed, failed, err := store.ResealDeviceSecrets(ctx, env.DB, rotated, 2)
	require.NoError(t, err)
	require.Equal(t, 2, resealed)
	require.Equal(t, 1, failed)

	for _, d := range read() {
		was := before[d.UserID]
		require.True(t, was.UpdatedAt.Equal(d.UpdatedAt), "%s: updated_at kept", d.UserID)
		switch d.UserID {
		case "phone":
			require.Empty(t, d.Secret)
		case "bygone":
			require.Equal(t, was.Secret, d.Secret, "left as it was")
		case "bynew":
			require.Equal(t, was.Secret, d.Secret, "already under the current key")
		default:
			require.Equal(t, "new", seal.KeyOf(d.Secret), d.UserID)
			got, err := rotated.Open(d.Secret, store.DeviceSecretAAD(7, d.UserID, "browser"))
			require.NoError(t, err)
			require.Equal(t, plain[d.UserID], string(got))
			_, err = old.Open(d.Secret, store.DeviceSecretAAD(7, d.UserID, "browser"))
			require.ErrorIs(t, err, seal.ErrUnknownKey, "the old key is no longer needed")
		}
	}

	resealed, failed, err = store.ResealDeviceSecrets(ctx, env.DB, rotated, 0)
	require.NoError(t, err)
	require.Zero(t, resealed)
	require.Equal(t, 1, failed)
}
