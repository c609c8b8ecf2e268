package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/store"
)

var models = []any{
	&store.App{}, &store.APIKey{}, &store.Reminder{}, &store.Location{}, &store.ReminderTime{},
	&store.Subscription{}, &store.Occurrence{}, &store.GroupRun{}, &store.Contact{}, &store.MessageStat{},
}

// migrationIDs returns the IDs recorded in schema_migrations, failing the
// test if one is recorded twice.
func migrationIDs(t *testing.T, db *gorm.DB) []string {
	t.Helper()
	var ids []string
	require.NoError(t, db.Table("schema_migrations").Order("id").Pluck("id", &ids).Error)
	seen := map[string]bool{}
	for _, id := range ids {
		require.False(t, seen[id], "migration %s recorded twice", id)
		seen[id] = true
	}
	return ids
}

func requireSchema(t *testing.T, db *gorm.DB) {
	t.Helper()
	m := db.Migrator()
	for _, model := range models {
		require.True(t, m.HasTable(model), "table of %T", model)
	}
	require.True(t, m.HasIndex(&store.Subscription{}, "ix_subscription_group"))
	require.True(t, m.HasIndex(&store.Occurrence{}, "ux_occurrence"))
	require.True(t, m.HasIndex(&store.GroupRun{}, "ux_group_run"))
	require.True(t, m.HasColumn(&store.Occurrence{}, "ExpiresAt"))
	require.True(t, m.HasColumn(&store.Reminder{}, "DeliverWhenOnline"))
	require.True(t, m.HasColumn(&store.Reminder{}, "NotifyContacts"))
	require.True(t, m.HasIndex(&store.SigningKey{}, "ix_signing_key_app"), "0006_app_signing_keys")
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// useSchema writes and reads rows through the migrated schema.
func useSchema(t *testing.T, db *gorm.DB) {
	t.Helper()
	r := store.Reminder{AppID: 1, Key: "water", Title: "Drink", Body: "Water", Groups: 4, ValidForS: 60}
	require.NoError(t, db.Create(&r).Error)
	require.NotZero(t, r.ID)
	subs := []store.Subscription{
		{ReminderID: r.ID, UserID: "u1", LocationID: 2, GroupNo: 1},
		{ReminderID: r.ID, UserID: "u2", LocationID: 2, GroupNo: 3},
	}
	require.NoError(t, db.Create(&subs).Error)
	// The primary key is (reminder, user).
	require.Error(t, db.Create(&store.Subscription{ReminderID: r.ID, UserID: "u1", LocationID: 5, GroupNo: 0}).Error)
	dup := store.Reminder{AppID: 1, Key: "water", Title: "x", Body: "y", Groups: 1, ValidForS: 1}
	require.Error(t, db.Create(&dup).Error, "reminder keys are unique per app")

	fire := time.Date(2026, 5, 1, 7, 30, 0, 250_000_000, time.UTC)
	o := store.Occurrence{ReminderID: r.ID, LocationID: 2, FireAt: fire, ExpiresAt: fire.Add(time.Minute), State: store.OccScheduled}
	require.NoError(t, db.Create(&o).Error)
	var got store.Occurrence
	require.NoError(t, db.First(&got, o.ID).Error)
	require.True(t, fire.Equal(got.FireAt), "fire_at keeps milliseconds: got %v", got.FireAt)
	var n int64
	require.NoError(t, db.Model(&store.Subscription{}).Where("reminder_id = ?", r.ID).Count(&n).Error)
	require.EqualValues(t, 2, n)
}

func TestMigrateMySQL(t *testing.T) {
	env := testenv.New(t) // migrated once
	ctx := ctxT(t)
	requireSchema(t, env.DB)
	ids := migrationIDs(t, env.DB)
	require.NotEmpty(t, ids)
	require.Equal(t, "0001_initial", ids[0])
	useSchema(t, env.DB)

	// Again: nothing to do, nothing lost.
	require.NoError(t, store.Migrate(ctx, env.DB))
	require.Equal(t, ids, migrationIDs(t, env.DB))
	requireSchema(t, env.DB)
	var n int64
	require.NoError(t, env.DB.Model(&store.Subscription{}).Count(&n).Error)
	require.EqualValues(t, 2, n)
}

func TestMigrateMySQLConcurrent(t *testing.T) {
	// The reference: one migration on an empty database.
	ref, err := store.Open(testenv.FreshDSN(t), testenv.Logger(t))
	require.NoError(t, err)
	t.Cleanup(func() { closeDB(ref) })
	require.NoError(t, store.Migrate(ctxT(t), ref))
	want := migrationIDs(t, ref)

	dsn := testenv.FreshDSN(t)
	const pods = 6
	dbs := make([]*gorm.DB, pods)
	for i := range dbs {
		db, err := store.Open(dsn, testenv.Logger(t))
		require.NoError(t, err)
		t.Cleanup(func() { closeDB(db) })
		dbs[i] = db
	}
	ctx := ctxT(t)
	start := make(chan struct{})
	errs := make([]error, pods)
	var wg sync.WaitGroup
	for i, db := range dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = store.Migrate(ctx, db)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "pod %d", i)
	}
	require.Equal(t, want, migrationIDs(t, dbs[0]))
	requireSchema(t, dbs[0])
	useSchema(t, dbs[1])

	// The migration lock was released: a later migration does not wait.
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, store.Migrate(lctx, dbs[2]))
	var free int
	require.NoError(t, dbs[3].Raw("SELECT IS_FREE_LOCK("+store.MigrationLock+")").Scan(&free).Error)
	require.Equal(t, 1, free)
}

func TestMigrateRejectsUnknownMigration(t *testing.T) {
	env := testenv.New(t)
	// A database migrated by a newer version than this one.
	require.NoError(t, env.DB.Exec("INSERT INTO schema_migrations (id) VALUES ('9999_from_the_future')").Error)
	require.Error(t, store.Migrate(ctxT(t), env.DB))
}

// bothStores returns a migrated database of the test's own on MariaDB and
// one on SQLite (the embedded store), by name, for a test to run on each.
func bothStores(t *testing.T) map[string]*gorm.DB {
	t.Helper()
	sqlite, err := store.Open("sqlite:"+t.TempDir()+"/s.db", testenv.Logger(t))
	require.NoError(t, err)
	t.Cleanup(func() { closeDB(sqlite) })
	require.NoError(t, store.Migrate(ctxT(t), sqlite))
	return map[string]*gorm.DB{"mysql": testenv.New(t).DB, "sqlite": sqlite}
}

func closeDB(db *gorm.DB) {
	if s, err := db.DB(); err == nil {
		s.Close()
	}
}

func TestMigrateSQLite(t *testing.T) {
	path := t.TempDir() + "/x.db"
	db, err := store.Open("sqlite:"+path, testenv.Logger(t))
	require.NoError(t, err)
	t.Cleanup(func() { closeDB(db) })
	require.False(t, store.IsMySQL(db))
	ctx := ctxT(t)

	require.NoError(t, store.Migrate(ctx, db))
	requireSchema(t, db)
	ids := migrationIDs(t, db)
	require.NotEmpty(t, ids)
	require.Equal(t, "0001_initial", ids[0])
	useSchema(t, db)

	require.NoError(t, store.Migrate(ctx, db))
	require.Equal(t, ids, migrationIDs(t, db))

	// Reopened, the schema is there and up to date.
	closeDB(db)
	db2, err := store.Open("sqlite:"+path, testenv.Logger(t))
	require.NoError(t, err)
	t.Cleanup(func() { closeDB(db2) })
	require.NoError(t, store.Migrate(ctx, db2))
	require.Equal(t, ids, migrationIDs(t, db2))
	var n int64
	require.NoError(t, db2.Model(&store.Subscription{}).Count(&n).Error)
	require.EqualValues(t, 2, n)
}

func TestMigrateReminderContent(t *testing.T) {
	// A database from before 0004b: the content columns dropped and the
	// migration unrecorded, with a reminder stored.
	env := testenv.New(t)
	ctx := ctxT(t)
	m := env.DB.Migrator()
	for _, col := range []string{"Lang", "Translations", "Tags"} {
		require.NoError(t, m.DropColumn(&store.Reminder{}, col))
	}
	require.NoError(t, env.DB.Exec("DELETE FROM schema_migrations WHERE id = '0004b_reminder_content'").Error)
	require.NoError(t, env.DB.Exec("INSERT INTO reminders (app_id, `key`, title, body, `groups`, valid_for_s, paused, created_at, updated_at) VALUES (1, 'old', 'Fajr', 'now', 4, 60, false, NOW(), NOW())").Error)

	require.NoError(t, store.Migrate(ctx, env.DB))
	require.Contains(t, migrationIDs(t, env.DB), "0004b_reminder_content")
	var old store.Reminder
	require.NoError(t, env.DB.Where("`key` = ?", "old").First(&old).Error)
	require.Equal(t, "en", old.Lang)
	require.Nil(t, old.Translations)
	require.Nil(t, old.Tags)

	// The columns round-trip, including Arabic text.
	r := store.Reminder{AppID: 1, Key: "sale", Title: "Sale", Body: "Now", Groups: 1, ValidForS: 60, Lang: "id",
		Translations: store.Texts{"ar": {Title: "تخفيضات", Body: "الآن"}}, Tags: store.Tags{"mask"}}
	require.NoError(t, env.DB.Create(&r).Error)
	var got store.Reminder
	require.NoError(t, env.DB.First(&got, r.ID).Error)
	require.Equal(t, r.Translations, got.Translations)
	require.Equal(t, r.Tags, got.Tags)
	require.Equal(t, "id", got.Lang)
}

// A database from before 0012: group runs without a layout, subscriptions
// holding their group under the reminder's count, and reminders with the
// old default of 256 groups or a count of their own. Checked: every
// subscription then holds its bucket (as grouping.Bucket computes it, over
// more rows than one page of the migration), group runs gain the layout
// column, and only the reminders with the old default are sized per
// location.
func TestMigrateGroupLayout(t *testing.T) {
	env := testenv.New(t)
	ctx := ctxT(t)
	require.NoError(t, env.DB.Migrator().DropColumn(&store.GroupRun{}, "Layout"))
	require.NoError(t, env.DB.Exec("DELETE FROM schema_migrations WHERE id = '0012_group_layout'").Error)
	def := store.Reminder{AppID: 1, Key: "default", Title: "T", Groups: 256, ValidForS: 60}
	own := store.Reminder{AppID: 1, Key: "own", Title: "T", Groups: 16, ValidForS: 60}
	require.NoError(t, env.DB.Create(&def).Error)
	require.NoError(t, env.DB.Create(&own).Error)
	var subs []store.Subscription
	for i := range 12_000 {
		u := fmt.Sprintf("user-%d", i)
		subs = append(subs, store.Subscription{ReminderID: []int64{def.ID, own.ID}[i%2], UserID: u, LocationID: 7, GroupNo: grouping.Of(u, 256)})
	}
	require.NoError(t, env.DB.CreateInBatches(subs, 1000).Error)

	require.NoError(t, store.Migrate(ctx, env.DB))
	require.Contains(t, migrationIDs(t, env.DB), "0012_group_layout")
	require.True(t, env.DB.Migrator().HasColumn(&store.GroupRun{}, "Layout"))
	var rows []store.Subscription
	require.NoError(t, env.DB.Find(&rows).Error)
	require.Len(t, rows, len(subs))
	wrong := 0
	for _, r := range rows {
		if r.GroupNo != grouping.Bucket(r.UserID) {
			wrong++
		}
	}
	require.Zero(t, wrong, "subscriptions whose group_no is not their bucket")
	var got store.Reminder
	require.NoError(t, env.DB.First(&got, def.ID).Error)
	require.Zero(t, got.Groups, "the old default is sized per location")
	var kept store.Reminder
	require.NoError(t, env.DB.First(&kept, own.ID).Error)
	require.Equal(t, 16, kept.Groups, "a count of its own is kept")
}

// A database from before 0017: no spread on reminders, occurrences or
// group runs, and a reminder and a group run stored then. Checked: the
// migration adds the columns and the (state, slot_at) index, the reminder
// reads back with no spread and the run with no slot (sent at its
// instant), and migrating again changes nothing.
func TestMigrateSpread(t *testing.T) {
	env := testenv.New(t)
	ctx := ctxT(t)
	m := env.DB.Migrator()
	require.NoError(t, m.DropIndex(&store.GroupRun{}, "ix_group_run_slot"))
	for _, c := range []struct {
		model any
		col   string
	}{{&store.Reminder{}, "SpreadS"}, {&store.Occurrence{}, "SpreadS"}, {&store.Occurrence{}, "SlotsLateMs"}, {&store.GroupRun{}, "SlotAt"}} {
		require.NoError(t, m.DropColumn(c.model, c.col))
	}
	require.NoError(t, env.DB.Exec("DELETE FROM schema_migrations WHERE id = '0017_spread'").Error)
	require.NoError(t, env.DB.Exec("INSERT INTO reminders (app_id, `key`, title, body, `groups`, valid_for_s, created_at, updated_at) VALUES (1, 'old', 'T', '', 0, 60, NOW(), NOW())").Error)
	require.NoError(t, env.DB.Exec("INSERT INTO group_runs (occurrence_id, group_no, state, attempts, worker, sent, failed, expired, queued_at) VALUES (1, 0, 'finished', 1, 'w', 1, 0, 0, NOW())").Error)

	require.NoError(t, store.Migrate(ctx, env.DB))
	require.Contains(t, migrationIDs(t, env.DB), "0017_spread")
	require.True(t, m.HasIndex(&store.GroupRun{}, "ix_group_run_slot"))
	var r store.Reminder
	require.NoError(t, env.DB.Where("`key` = 'old'").First(&r).Error)
	require.Zero(t, r.SpreadS)
	var run store.GroupRun
	require.NoError(t, env.DB.First(&run).Error)
	require.Nil(t, run.SlotAt)
	require.NoError(t, store.Migrate(ctx, env.DB))
}
