package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/seal"
	"github.com/chime-dev/chime/store"
)

// "chime app signing-key rotate" makes the app a new key on the test's
// database and prints its ID and secret; the app's older key then has an
// expiry. Refused in one line: bad arguments, an unknown app, an overlap
// out of bounds, and no CHIME_SECRET_KEYS.
func TestSigningKeyRotate(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	app, _, err := api.CreateApp(ctx, env.DB, "cli")
	require.NoError(t, err)
	keys, err := seal.NewKey("k1")
	require.NoError(t, err)
	environ := []string{"MYSQL_DSN=" + env.DSN, "REDIS_URL=" + env.RedisURL, "CHIME_REDIS_PREFIX=" + env.Prefix, "CHIME_SECRET_KEYS=" + keys}
	id := strconv.FormatInt(app.ID, 10)
	rotate := func(environ []string, args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, append([]string{"app", "signing-key", "rotate"}, args...), environ, &out, &errOut)
		return out.String(), err
	}
	line := regexp.MustCompile(`signing key (sk_[0-9a-f]{24})\nsecret \(shown once\): (sks_\S{43})\n`)
	out, err := rotate(environ, id)
	require.NoError(t, err)
	first := line.FindStringSubmatch(out)
	require.NotNil(t, first, out)
	out, err = rotate(environ, "-overlap", "1h", id)
	require.NoError(t, err)
	second := line.FindStringSubmatch(out)
	require.NotNil(t, second, out)
	var rows []store.SigningKey
	require.NoError(t, env.DB.Where("app_id = ?", app.ID).Order("created_at").Find(&rows).Error)
	require.Len(t, rows, 2)
	require.Equal(t, first[1], rows[0].ID)
	require.NotNil(t, rows[0].ExpiresAt, "the first key expires after the overlap")
	require.Equal(t, second[1], rows[1].ID)
	require.Nil(t, rows[1].ExpiresAt)

	for _, tc := range []struct {
		environ []string
		args    []string
		want    string
	}{
		{environ, nil, "usage: chime app signing-key rotate"},
		{environ, []string{"x"}, "usage: chime app signing-key rotate"},
		{environ, []string{"999999"}, "no app 999999"},
		{environ, []string{"-overlap", "25h", id}, "the overlap must be from 0s to 24h0m0s"},
		{environ[:3], []string{id}, "CHIME_SECRET_KEYS is not set"},
	} {
		_, err := rotate(tc.environ, tc.args...)
		require.ErrorContains(t, err, tc.want, tc.args)
		require.NotContains(t, err.Error(), "\n")
	}
}
