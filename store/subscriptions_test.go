package store_test

import (
	"context"
	"log/slog"
	"strconv"
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

// BenchmarkSubscribe registers new users 10,000 a call, as one bulk request
// does, and reports subscribers stored per second. It asserts nothing:
// go test -run '^$' -bench Subscribe ./store/
func BenchmarkSubscribe(b *testing.B) {
	env := testenv.New(b)
	ctx := context.Background()
	start := time.Now()
	for n := range b.N {
		subs := make([]store.Subscription, 10000)
		for i := range subs {
			u := strconv.Itoa(1_000_000 + n*10000 + i)
			subs[i] = store.Subscription{ReminderID: 1, UserID: u, LocationID: int64(i % 4), GroupNo: i % 256}
		}
		if _, err := store.Subscribe(ctx, env.DB, 1, subs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*10000)/time.Since(start).Seconds(), "subscribers/s")
}

// Injects: registrations of new users only (the insert-only path), then a
// mix of new, moved and unchanged users across several statements (the
// savepoint, read and upsert path), on MariaDB and on SQLite. Checks: the
// returned previous rows are exactly the existing users' old rows, and
// every row holds its new location and group.
func TestSubscribeNewAndExisting(t *testing.T) {
	for name, db := range bothStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := ctxT(t)
			subs := func(from, to int, loc int64) []store.Subscription {
				var out []store.Subscription
				for i := from; i < to; i++ {
					out = append(out, store.Subscription{ReminderID: 7, UserID: "u" + strconv.Itoa(i), LocationID: loc, GroupNo: i % 5})
				}
				return out
			}
			old, err := store.Subscribe(ctx, db, 7, subs(0, 22000, 1))
			require.NoError(t, err)
			require.Empty(t, old)

			// 0..4999 stay, 5000..14999 move, 22000..29999 are new; the
			// batch boundaries (10,000 rows a statement on MariaDB, 6,000 on
			// SQLite) fall inside the moved and the new users.
			mix := append(subs(0, 5000, 1), subs(5000, 15000, 2)...)
			mix = append(mix, subs(22000, 30000, 3)...)
			old, err = store.Subscribe(ctx, db, 7, mix)
			require.NoError(t, err)
			require.Len(t, old, 15000)
			for _, o := range old {
				i, _ := strconv.Atoi(o.UserID[1:])
				require.Less(t, i, 15000)
				// The old row comes with when it was made (a zone move's
				// mark says since when the user was there).
				require.False(t, o.CreatedAt.IsZero(), o.UserID)
				o.CreatedAt = time.Time{}
				require.Equal(t, store.Subscription{ReminderID: 7, UserID: o.UserID, LocationID: 1, GroupNo: i % 5}, o)
			}
			count := func(loc int64) (n int64) {
				require.NoError(t, db.Model(&store.Subscription{}).Where("reminder_id = 7 AND location_id = ?", loc).Count(&n).Error)
				return n
			}
			require.Equal(t, []int64{5000 + 7000, 10000, 8000}, []int64{count(1), count(2), count(3)})
		})
	}
}

// Injects: a request whose third statement (of 10,000 rows each) fails (a
// user ID too long for the column, refused by MariaDB's strict mode) after
// two statements of new users went in. Checks: nothing of the request is
// stored.
func TestSubscribeAllOrNothing(t *testing.T) {
	env := testenv.New(t)
	var subs []store.Subscription
	for i := range 25000 {
		subs = append(subs, store.Subscription{ReminderID: 8, UserID: "n" + strconv.Itoa(i), LocationID: 1})
	}
	subs[22500].UserID = strings.Repeat("x", 300)
	_, err := store.Subscribe(ctxT(t), env.DB, 8, subs)
	require.Error(t, err)
	var n int64
	require.NoError(t, env.DB.Model(&store.Subscription{}).Where("reminder_id = 8").Count(&n).Error)
	require.Zero(t, n)
}
