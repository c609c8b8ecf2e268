package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/sender/webhook"
	"github.com/chime-dev/chime/store"
)

// TestSecretKeyNew checks that the printed entry is one CHIME_SECRET_KEYS
// accepts and that a bad ID is refused in one line.
func TestSecretKeyNew(t *testing.T) {
	var out, errOut bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"secret-key", "new", "k2026"}, nil, &out, &errOut))
	line := strings.TrimSpace(out.String())
	require.True(t, strings.HasPrefix(line, "k2026="), line)
	k, err := seal.Parse(line)
	require.NoError(t, err)
	require.Equal(t, "k2026", k.Current())

	err = run(context.Background(), []string{"secret-key", "new", "bad id"}, nil, &out, &errOut)
	require.ErrorContains(t, err, "want 1-16 letters")
	require.NotContains(t, err.Error(), "\n")
}

// TestSecretKeyReseal runs the command on a real database: a web device
// stored before sealing and one sealed under an older key are re-sealed
// under the first key of CHIME_SECRET_KEYS, one device at a time; one
// sealed under a key that is not configured makes the command fail, naming
// the count, and is left as it was. Without CHIME_SECRET_KEYS it refuses.
func TestSecretKeyReseal(t *testing.T) {
	env := testenv.New(t)
	oldSpec, err := seal.NewKey("old")
	require.NoError(t, err)
	newSpec, err := seal.NewKey("new")
	require.NoError(t, err)
	old, err := seal.Parse(oldSpec)
	require.NoError(t, err)
	secret := webhook.NewSecret()
	byOld, err := old.Seal([]byte(secret), store.DeviceSecretAAD(1, "b", "web"))
	require.NoError(t, err)
	for user, value := range map[string]string{"a": secret, "b": byOld} {
		require.NoError(t, env.DB.Create(&store.Device{AppID: 1, UserID: user, DeviceID: "web", Platform: store.PlatformWeb,
			Token: "https://push.example.com/" + user, Secret: value}).Error)
	}
	environ := []string{"MYSQL_DSN=" + env.DSN, "CHIME_SECRET_KEYS=" + newSpec + "," + oldSpec}
	var out, errOut bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"secret-key", "reseal", "-batch", "1"}, environ, &out, &errOut))
	require.Contains(t, out.String(), `under key "new": 2`)
	var devs []store.Device
	require.NoError(t, env.DB.Order("user_id").Find(&devs).Error)
	for _, d := range devs {
		require.Equal(t, "new", seal.KeyOf(d.Secret), d.UserID)
	}

	// "old" dropped from the list too early: b's secret is under "new", but
	// a value still sealed with "old" no longer opens.
	require.NoError(t, env.DB.Model(&store.Device{}).Where("user_id = ?", "b").Update("secret", byOld).Error)
	out.Reset()
	err = run(context.Background(), []string{"secret-key", "reseal"}, []string{"MYSQL_DSN=" + env.DSN, "CHIME_SECRET_KEYS=" + newSpec}, &out, &errOut)
	require.ErrorContains(t, err, "1 device secrets do not open")
	var b store.Device
	require.NoError(t, env.DB.Where("user_id = ?", "b").First(&b).Error)
	require.Equal(t, byOld, b.Secret)

	err = run(context.Background(), []string{"secret-key", "reseal"}, []string{"MYSQL_DSN=" + env.DSN}, &out, &errOut)
	require.ErrorContains(t, err, "CHIME_SECRET_KEYS is not set")
}
