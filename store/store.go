// Package store is Chime's source of truth: apps and their API keys,
// reminders, locations, reminder times, subscriptions, occurrences, group
// runs, users' devices and the push channel's delivery counts and failures, kept in MySQL/MariaDB in production and in SQLite for the embedded
// mode, through gorm.
//
// Everything in Redis (membership index, acks, checkpoints, queues) can be
// rebuilt or reconciled from what is stored here.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	mysqldrv "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// ErrNotFound is returned when a row does not exist or belongs to another app.
var ErrNotFound = errors.New("not found")

// Open connects to the database named by dsn: a go-sql-driver MySQL DSN
// ("user:pw@tcp(host:3306)/chime?parseTime=true") or "sqlite:<path>" for the
// embedded mode ("sqlite::memory:" keeps it in memory).
func Open(dsn string, log *slog.Logger) (*gorm.DB, error) {
	cfg := &gorm.Config{
		// Failed and slow statements are logged without their values (see
		// log.go).
		Logger: sqlLogger{logger.NewSlogLogger(log, logger.Config{
			SlowThreshold: time.Second, LogLevel: logger.Warn, IgnoreRecordNotFoundError: true, ParameterizedQueries: true,
		})},
		SkipDefaultTransaction: true,
		NowFunc:                func() time.Time { return time.Now().UTC() },
	}
	var dial gorm.Dialector
	if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		if path == ":memory:" {
			path = "file::memory:?cache=shared"
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		// WAL and a busy timeout let the API and the scheduler write at once.
		dial = sqlite.Open(path + sep + "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)")
	} else {
		if !strings.Contains(dsn, "parseTime") {
			sep := "?"
			if strings.Contains(dsn, "?") {
				sep = "&"
			}
			dsn += sep + "parseTime=true&loc=UTC"
		}
		dial = mysql.Open(dsn)
	}
	db, err := gorm.Open(dial, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if db.Name() == "sqlite" {
		// One writer at a time is all SQLite allows; a single connection avoids
		// "database is locked" between goroutines.
		sqlDB.SetMaxOpenConns(1)
	} else {
		sqlDB.SetMaxOpenConns(32)
		sqlDB.SetMaxIdleConns(32)
		sqlDB.SetConnMaxLifetime(10 * time.Minute)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("ping database: %w", err)
	}
	return db, nil
}

// IsMySQL reports whether db speaks MySQL (as opposed to SQLite).
func IsMySQL(db *gorm.DB) bool { return db.Name() == "mysql" }

// Transaction runs fn in a transaction, and runs it again (up to three
// times in all) when MySQL picks it as a deadlock victim, its lock wait
// times out, or a concurrent transaction inserted the same unique key first:
// with concurrent writers that is expected, and the transaction was rolled
// back whole, so fn must reset any state it sets outside.
func Transaction(ctx context.Context, db *gorm.DB, fn func(tx *gorm.DB) error) error {
	var err error
	for attempt := range 3 {
		err = db.WithContext(ctx).Transaction(fn)
		if !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 10 * time.Millisecond):
		}
	}
	return err
}

func retryable(err error) bool {
	var me *mysqldrv.MySQLError
	if errors.As(err, &me) {
		// Deadlock, lock wait timeout, and a duplicate key from a concurrent
		// insert of the same row (run again, the transaction finds it).
		return me.Number == 1213 || me.Number == 1205 || me.Number == 1062
	}
	return false
}

// CreateDatabase creates an empty utf8mb4_bin database called name on the
// MySQL server of base (a go-sql-driver DSN) and returns its DSN and a
// function that drops it. Tests and benchmarks use it to work in a database
// of their own.
func CreateDatabase(base, name string, log *slog.Logger) (string, func(), error) {
	cfg, err := mysqldrv.ParseDSN(base)
	if err != nil {
		return "", nil, fmt.Errorf("MYSQL_DSN: %w", err)
	}
	cfg.DBName = ""
	admin, err := Open(cfg.FormatDSN(), log)
	if err != nil {
		return "", nil, err
	}
	closeAdmin := func() {
		if s, err := admin.DB(); err == nil {
			s.Close()
		}
	}
	if err := admin.Exec("CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin").Error; err != nil {
		closeAdmin()
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	cfg.DBName = name
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	return cfg.FormatDSN(), func() {
		admin.Exec("DROP DATABASE IF EXISTS `" + name + "`")
		closeAdmin()
	}, nil
}
