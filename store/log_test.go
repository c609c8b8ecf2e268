package store_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/store"
)

// A failed write and a slow query are logged, and their values are not.
// Injected: a web device whose secret is over its column's 255 characters
// (MariaDB's strict mode refuses it), and a Scan (which gorm logs with its
// values filled in) slower than the 1s slow threshold that selects a
// secret; checked: the captured log names both statements but holds
// neither secret, nor the device's endpoint.
func TestLogsHoldNoValues(t *testing.T) {
	env := testenv.New(t)
	var out testenv.Output
	db, err := store.Open(env.DSN, slog.New(slog.NewTextHandler(&out, nil)))
	require.NoError(t, err)
	t.Cleanup(func() {
		if s, err := db.DB(); err == nil {
			s.Close()
		}
	})

	secret := "whsec_" + strings.Repeat("s3cr3t", 50)
	err = db.Create(&store.Device{AppID: 1, UserID: "user-7", DeviceID: "web-1", Platform: store.PlatformWeb,
		Token: "https://push.example.com/hooks/user-7", Secret: secret}).Error
	require.Error(t, err, "a secret over 255 characters is refused")

	slow := "whsec_slowquerysecret"
	var got string
	require.NoError(t, db.Raw("SELECT ? FROM (SELECT SLEEP(1.1)) AS t", slow).Scan(&got).Error)
	require.Equal(t, slow, got)

	log := out.String()
	t.Log(log)
	require.Contains(t, log, "Data too long", "the failed write is logged")
	require.Contains(t, log, "INSERT INTO `devices`")
	require.Contains(t, log, "SELECT ? FROM (SELECT SLEEP(1.1))", "the slow query is logged")
	require.NotContains(t, log, "s3cr3t")
	require.NotContains(t, log, slow)
	require.NotContains(t, log, "push.example.com")
}
