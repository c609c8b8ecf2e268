package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/go-gormigrate/gormigrate/v2"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
)

// migrations are applied in order and recorded in schema_migrations; an
// applied migration is never edited, a change is a new migration.
//
// Migration 0001 creates the tables from the model structs. Later
// migrations must be written so that they also succeed on a database where
// 0001 ran with the newer structs (check HasColumn/HasIndex before adding).
var migrations = []*gormigrate.Migration{
	{
		ID: "0001_initial",
		Migrate: func(tx *gorm.DB) error {
			if IsMySQL(tx) {
				// Keys, location names and user IDs compare byte for byte:
				// "Fajr" and "fajr" are two reminders, whatever the server's
				// default collation.
				tx = tx.Set("gorm:table_options", "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
			}
			return tx.Migrator().CreateTable(
				&App{}, &APIKey{}, &Reminder{}, &Location{}, &ReminderTime{},
				&Subscription{}, &Occurrence{}, &GroupRun{},
				&ReminderLocation{}, &DatedTime{}, &Event{}, &PlannerMark{},
			)
		},
	},
	{
		ID: "0002_reminder_paused",
		Migrate: func(tx *gorm.DB) error {
			if tx.Migrator().HasColumn(&Reminder{}, "Paused") {
				return nil // created by 0001 from the current struct
			}
			return tx.Migrator().AddColumn(&Reminder{}, "Paused")
		},
	},
	{
		ID:      "0003_times_events",
		Migrate: migrateTimesEvents,
	},
	{
		ID: "0004b_reminder_content",
		Migrate: func(tx *gorm.DB) error {
			// A reminder's language, translations and tags; reminders
			// stored before get "en" and none.
			for _, col := range []string{"Lang", "Translations", "Tags"} {
				if tx.Migrator().HasColumn(&Reminder{}, col) {
					continue // created by 0001 from the current struct
				}
				if err := tx.Migrator().AddColumn(&Reminder{}, col); err != nil {
					return err
				}
			}
			return nil
		},
	},
	{
		ID: "0004_devices",
		Migrate: func(tx *gorm.DB) error {
			if IsMySQL(tx) {
				tx = tx.Set("gorm:table_options", "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
			}
			for _, m := range []any{&Device{}, &DeliveryCount{}, &DeliveryFailure{}} {
				if tx.Migrator().HasTable(m) {
					continue
				}
				if err := tx.Migrator().CreateTable(m); err != nil {
					return err
				}
			}
			return nil
		},
	},
	{
		ID: "0005_online_inbox",
		Migrate: func(tx *gorm.DB) error {
			for _, col := range []string{"DeliverWhenOnline", "NotifyContacts"} {
				if !tx.Migrator().HasColumn(&Reminder{}, col) {
					if err := tx.Migrator().AddColumn(&Reminder{}, col); err != nil {
						return err
					}
				}
			}
			if IsMySQL(tx) {
				tx = tx.Set("gorm:table_options", "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
			}
			for _, t := range []any{&Contact{}, &MessageStat{}} {
				if !tx.Migrator().HasTable(t) {
					if err := tx.Migrator().CreateTable(t); err != nil {
						return err
					}
				}
			}
			return nil
		},
	},
	{
		ID: "0006_app_signing_keys",
		Migrate: func(tx *gorm.DB) error {
			// Each app's keys for its client tokens, replacing the one
			// gateway secret of every app.
			if IsMySQL(tx) {
				tx = tx.Set("gorm:table_options", "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
			}
			if tx.Migrator().HasTable(&SigningKey{}) {
				return nil
			}
			return tx.Migrator().CreateTable(&SigningKey{})
		},
	},
	{
		ID: "0007_api_key_lifecycle",
		Migrate: func(tx *gorm.DB) error {
			// Keys get a name, a last use, and a revocation that keeps the
			// row; keys stored before are named "" and stay valid.
			for _, col := range []string{"Name", "LastUsedAt", "ExpiresAt", "RevokedAt"} {
				if tx.Migrator().HasColumn(&APIKey{}, col) {
					continue // created by 0001 from the current struct
				}
				if err := tx.Migrator().AddColumn(&APIKey{}, col); err != nil {
					return fmt.Errorf("add api_keys.%s: %w", col, err)
				}
			}
			return nil
		},
	},
	{ID: "0008_device_secret_sealed", Migrate: widenDeviceSecret},
	{ID: "0009_location_coordinates", Migrate: func(tx *gorm.DB) error {
		// Locations get coordinates and a prayer convention override;
		// those stored before have none.
		for _, col := range []string{"Latitude", "Longitude", "Elevation", "Method", "Madhab", "HighLatitudeRule"} {
			if tx.Migrator().HasColumn(&Location{}, col) {
				continue // created by 0001 from the current struct
			}
			if err := tx.Migrator().AddColumn(&Location{}, col); err != nil {
				return fmt.Errorf("add locations.%s: %w", col, err)
			}
		}
		return nil
	}},
	{
		ID: "0010_reminder_recurrence",
		Migrate: func(tx *gorm.DB) error {
			// The dates a reminder fires on (reminders stored before fire
			// every day), and the prayers and convention of prayer
			// reminders.
			for _, col := range []string{"Recurrence", "Prayers", "Method", "Madhab", "HighLatitudeRule"} {
				if tx.Migrator().HasColumn(&Reminder{}, col) {
					continue // created by 0001 from the current struct
				}
				if err := tx.Migrator().AddColumn(&Reminder{}, col); err != nil {
					return fmt.Errorf("add reminders.%s: %w", col, err)
				}
			}
			return nil
		},
	},
	{
		ID: "0011_console",
		Migrate: func(tx *gorm.DB) error {
			// Console users and their sessions, and the audit log.
			if IsMySQL(tx) {
				tx = tx.Set("gorm:table_options", "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
			}
			return tx.AutoMigrate(&ConsoleUser{}, &ConsoleSession{}, &AuditEntry{})
		},
	},
	{ID: "0012_group_layout", Migrate: migrateGroupLayout},
	{ID: "0013_occurrence_prayer", Migrate: func(tx *gorm.DB) error {
		// A prayer reminder's occurrence names its prayer, for templates;
		// those planned before fire with an empty .Prayer.
		if tx.Migrator().HasColumn(&Occurrence{}, "Prayer") {
			return nil // created by 0001 from the current struct
		}
		return tx.Migrator().AddColumn(&Occurrence{}, "Prayer")
	}},
	{
		ID: "0014_occurrence_test_user",
		Migrate: func(tx *gorm.DB) error {
			// Test sends are occurrences for one user; the unique key gains
			// the user, so a test send never takes a planned instant's row.
			m := tx.Migrator()
			if m.HasColumn(&Occurrence{}, "TestUser") {
				return nil // created by 0001 from the current struct
			}
			if err := m.AddColumn(&Occurrence{}, "TestUser"); err != nil {
				return fmt.Errorf("add occurrences.test_user: %w", err)
			}
			if err := m.DropIndex(&Occurrence{}, "ux_occurrence"); err != nil {
				return err
			}
			return m.CreateIndex(&Occurrence{}, "ux_occurrence")
		},
	},
	{ID: "0015_user_zones", Migrate: migrateUserZones},
	{ID: "0016_delivery_policy", Migrate: migrateDeliveryPolicy},
	{ID: "0017_spread", Migrate: migrateSpread},
	{ID: "0018_delivery_events", Migrate: migrateDeliveryEvents},
	{
		ID: "0019_group_run_counted_through",
		Migrate: func(tx *gorm.DB) error {
			if tx.Migrator().HasColumn(&GroupRun{}, "CountedThrough") {
				return nil // created by 0001 from the current struct
			}
			return tx.Migrator().AddColumn(&GroupRun{}, "CountedThrough")
		},
	},
}

// migrateUserZones adds the times of day daily reminders fire at in each
// user's own zone, and once reminders in local time; reminders stored
// before have neither.
func migrateUserZones(tx *gorm.DB) error {
	m := tx.Migrator()
	if !m.HasColumn(&Reminder{}, "Local") {
		if err := m.AddColumn(&Reminder{}, "Local"); err != nil {
			return fmt.Errorf("add reminders.local: %w", err)
		}
	}
	if m.HasTable(&ZoneTime{}) {
		return nil
	}
	if IsMySQL(tx) {
		tx = tx.Set("gorm:table_options", "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
	}
	return tx.Migrator().CreateTable(&ZoneTime{})
}

// migrateSpread adds spread sends: the reminder's spread, the spread and
// slot lateness an occurrence fired with, and each group run's planned slot
// (rows stored before have none and are sent at their instant).
func migrateSpread(tx *gorm.DB) error {
	m := tx.Migrator()
	for _, c := range []struct {
		model any
		col   string
	}{{&Reminder{}, "SpreadS"}, {&Occurrence{}, "SpreadS"}, {&Occurrence{}, "SlotsLateMs"}, {&GroupRun{}, "SlotAt"}} {
		if m.HasColumn(c.model, c.col) {
			continue // created by 0001 from the current struct
		}
		if err := m.AddColumn(c.model, c.col); err != nil {
			return fmt.Errorf("add %s: %w", c.col, err)
		}
	}
	if m.HasIndex(&GroupRun{}, "ix_group_run_slot") {
		return nil
	}
	return m.CreateIndex(&GroupRun{}, "ix_group_run_slot")
}

// migrateTimesEvents adds reminder kinds (timetable, once, topic), grace
// windows, the tables behind them, and the event an occurrence fires for.
func migrateTimesEvents(tx *gorm.DB) error {
	m := tx.Migrator()
	for _, col := range []string{"Kind", "At", "Offsets", "GraceS", "Schema"} {
		if !m.HasColumn(&Reminder{}, col) {
			if err := m.AddColumn(&Reminder{}, col); err != nil {
				return fmt.Errorf("add reminders.%s: %w", col, err)
			}
		}
	}
	if IsMySQL(tx) {
		tx = tx.Set("gorm:table_options", "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
	}
	for _, t := range []any{&ReminderLocation{}, &DatedTime{}, &Event{}, &PlannerMark{}} {
		if !m.HasTable(t) {
			if err := tx.Migrator().CreateTable(t); err != nil {
				return err
			}
		}
	}
	if !m.HasColumn(&Occurrence{}, "MissAt") {
		if err := m.AddColumn(&Occurrence{}, "MissAt"); err != nil {
			return err
		}
	}
	if !m.HasColumn(&Occurrence{}, "EventID") {
		// The unique key gains the event: two events on one topic may fire
		// at the same instant.
		if err := m.AddColumn(&Occurrence{}, "EventID"); err != nil {
			return err
		}
		if err := m.DropIndex(&Occurrence{}, "ux_occurrence"); err != nil {
			return err
		}
		if err := m.CreateIndex(&Occurrence{}, "ux_occurrence"); err != nil {
			return err
		}
	}
	if err := tx.Exec("UPDATE occurrences SET state = ? WHERE state = ?", OccMissed, "expired").Error; err != nil {
		return err
	}
	return tx.Exec(`INSERT INTO reminder_locations (reminder_id, location_id)
		SELECT DISTINCT rt.reminder_id, rt.location_id FROM reminder_times rt
		WHERE NOT EXISTS (SELECT 1 FROM reminder_locations rl WHERE rl.reminder_id = rt.reminder_id AND rl.location_id = rt.location_id)`).Error
}

// MigrationLock is the SQL expression naming the MySQL lock migrations run
// under: one per database.
const MigrationLock = "LEFT(CONCAT('chime_migrate:', DATABASE()), 64)"

// Migrate brings the schema up to date. It is safe when several pods start
// at once: on MySQL the migrations run under a named lock (GET_LOCK), so one
// pod migrates while the others wait and then find nothing left to do.
func Migrate(ctx context.Context, db *gorm.DB) error {
	opts := *gormigrate.DefaultOptions
	opts.TableName = "schema_migrations"
	opts.ValidateUnknownMigrations = true
	if !IsMySQL(db) {
		// SQLite serialises writers itself and DDL is transactional there.
		opts.UseTransaction = true
		return runMigrations(db.WithContext(ctx), &opts)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	// GET_LOCK belongs to a connection, so take one connection and keep every
	// statement of the migration on it.
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	var got sql.NullInt64
	// The lock is named for the database: named locks are server-wide, and
	// another database on the server (another deployment) is not ours to
	// wait for.
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK("+MigrationLock+", 120)").Scan(&got); err != nil {
		return fmt.Errorf("migrate: take lock: %w", err)
	}
	if got.Int64 != 1 {
		return fmt.Errorf("migrate: another process held the migration lock for 120s")
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = conn.ExecContext(rctx, "DO RELEASE_LOCK("+MigrationLock+")")
	}()
	pinned, err := gorm.Open(mysql.New(mysql.Config{Conn: conn}), &gorm.Config{Logger: db.Logger, SkipDefaultTransaction: true})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return runMigrations(pinned.WithContext(ctx), &opts)
}

func runMigrations(db *gorm.DB, opts *gormigrate.Options) error {
	if err := gormigrate.New(db, opts, migrations).Migrate(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
