package store_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/store"
)

// Injects: an INSERT that MariaDB refuses (event data of 70,000 bytes in
// a TEXT column), through a pool opened with a logger the test reads.
// Checks: the failed statement is logged with placeholders and its error,
// never with the value, and the logged statement is cut short.
func TestFailedStatementLogsNoValues(t *testing.T) {
	env := testenv.New(t)
	var logs bytes.Buffer
	db, err := store.Open(env.DSN, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	t.Cleanup(func() {
		if s, err := db.DB(); err == nil {
			s.Close()
		}
	})
	value := strings.Repeat("z", 70000)
	err = db.Create(&store.Event{AppID: 1, ReminderID: 1, RequestHash: "h", Data: value}).Error
	require.ErrorContains(t, err, "Data too long")
	require.Contains(t, logs.String(), "Data too long")
	require.Contains(t, logs.String(), "INSERT INTO `events`")
	require.NotContains(t, logs.String(), "zzzzzzzz")
	require.Less(t, logs.Len(), 4096)
}

// OpenProbe opens a pool of its own, of at most ProbeConns connections,
// that pings the test's database.
func TestOpenProbe(t *testing.T) {
	env := testenv.New(t)
	p, err := store.OpenProbe(env.DB)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	require.NoError(t, p.Ping())
	require.Equal(t, store.ProbeConns, p.Stats().MaxOpenConnections)
	main, err := env.DB.DB()
	require.NoError(t, err)
	require.NotSame(t, main, p)
}
