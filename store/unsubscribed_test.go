package store_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/store"
)

// Injects, on MariaDB and on SQLite: a reminder at four locations, users
// subscribed at two of them, and another reminder's user at a third.
// Checks: the locations without a subscription of this reminder are the
// other two, the third among them.
func TestUnsubscribedLocations(t *testing.T) {
	for name, db := range bothStores(t) {
		t.Run(name, func(t *testing.T) {
			for _, loc := range []int64{10, 20, 30, 40} {
				require.NoError(t, db.Create(&store.ReminderLocation{ReminderID: 1, LocationID: loc}).Error)
			}
			for _, s := range []store.Subscription{
				{ReminderID: 1, UserID: "a", LocationID: 20},
				{ReminderID: 1, UserID: "b", LocationID: 20},
				{ReminderID: 1, UserID: "c", LocationID: 40},
				{ReminderID: 2, UserID: "d", LocationID: 30},
			} {
				require.NoError(t, db.Create(&s).Error)
			}
			empty, err := store.UnsubscribedLocations(ctxT(t), db, 1)
			require.NoError(t, err)
			require.Equal(t, []int64{10, 30}, empty)
		})
	}
}
