package store_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/store"
)

// Injects: another transaction holding the lock on a user's subscription
// while store.Subscribe moves the user, through a pool whose lock waits
// time out after 1s, so the first attempt fails with MySQL error 1205 (lock
// wait timeout, read from the pool's log); the holder then commits.
// Checks: Subscribe runs the transaction again instead of failing, returns
// the subscription the user had, and the row holds the new location.
func TestSubscribeRetriesLockWaitTimeout(t *testing.T) {
	env := testenv.New(t)
	ctx := ctxT(t)
	var logs testenv.Output
	db, err := store.Open(env.DSN+"&innodb_lock_wait_timeout=1", slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	t.Cleanup(func() {
		if s, err := db.DB(); err == nil {
			s.Close()
		}
	})
	require.NoError(t, env.DB.Create(&store.Subscription{ReminderID: 1, UserID: "u1", LocationID: 1}).Error)

	holder := env.DB.WithContext(ctx).Begin()
	require.NoError(t, holder.Error)
	defer holder.Rollback()
	var held store.Subscription
	require.NoError(t, holder.Raw("SELECT * FROM subscriptions WHERE reminder_id = 1 AND user_id = 'u1' FOR UPDATE").Scan(&held).Error)

	type result struct {
		old []store.Subscription
		err error
	}
	done := make(chan result, 1)
	go func() {
		old, err := store.Subscribe(ctx, db, 1, []store.Subscription{{ReminderID: 1, UserID: "u1", LocationID: 2}})
		done <- result{old, err}
	}()
	testenv.WaitUntil(t, 10*time.Second, "the first attempt's lock wait times out", func() bool {
		return strings.Contains(logs.String(), "Error 1205")
	})
	require.NoError(t, holder.Commit().Error)

	res := <-done
	require.NoError(t, res.err)
	require.Len(t, res.old, 1)
	require.Equal(t, int64(1), res.old[0].LocationID)
	var now store.Subscription
	require.NoError(t, env.DB.Where("reminder_id = 1 AND user_id = 'u1'").First(&now).Error)
	require.Equal(t, int64(2), now.LocationID)
}
