// Package store is Chime's source of truth: apps and their API keys,
// reminders, locations, reminder times, subscriptions, occurrences, group
// runs, users' devices and the push channel's delivery counts and failures, kept in MySQL/MariaDB in production and in SQLite for the embedded
// mode, through gorm.
//
// Every query and transaction over them lives here, one file per aggregate
// (reminders.go, subscriptions.go, timetable.go, events.go, ...), and every
// write goes through Transaction, which runs it again on a deadlock; callers
// branch on the sentinel errors (ErrNotFound, ErrFiring, ...) and *ZoneError.
//
// Everything in Redis (membership index, acks, checkpoints, queues) can be
// rebuilt or reconciled from what is stored here.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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

// ErrBadDSN is returned by Ping for a DSN that does not parse.
var ErrBadDSN = errors.New("MYSQL_DSN is not valid")

// Open connects to the database named by dsn: a go-sql-driver MySQL DSN
// ("user:pw@tcp(host:3306)/chime?parseTime=true") or "sqlite:<path>" for the
// embedded mode ("sqlite::memory:" keeps it in memory).
func Open(dsn string, log *slog.Logger) (*gorm.DB, error) {
	cfg := &gorm.Config{
		// Statements are logged with placeholders, not their values: a
		// failed or slow write would otherwise log whatever the request
		// carried (64 KB of event data, 10,000 user IDs).
		Logger: quietCancel{logger.NewSlogLogger(log, logger.Config{
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
		if !strings.Contains(dsn, "interpolateParams") {
			// Statements with placeholders are sent with their values in
			// one round trip instead of prepared, run and closed on the
			// server: a bulk insert of 2,000 rows (10,000 placeholders)
			// takes half the time. The driver escapes the values for the
			// connection's character set and prepares when it cannot.
			sep := "?"
			if strings.Contains(dsn, "?") {
				sep = "&"
			}
			dsn += sep + "interpolateParams=true"
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

// Ping connects once to the MySQL server of dsn within ctx, logs in and
// closes the connection: whether Open would reach the database now. Open
// itself connects without a deadline (gorm reads the server's version
// first), so a process waiting for a database that is not up yet pings
// with this until it answers. For SQLite it returns nil.
func Ping(ctx context.Context, dsn string) error {
	if strings.HasPrefix(dsn, "sqlite:") {
		return nil
	}
	cfg, err := mysqldrv.ParseDSN(dsn)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadDSN, err)
	}
	conn, err := mysqldrv.NewConnector(cfg)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadDSN, err)
	}
	p := sql.OpenDB(conn)
	defer p.Close()
	return p.PingContext(ctx)
}

// ProbeConns is the most connections a readiness pool opens: probes from
// the kubelet and a load balancer may come at once.
const ProbeConns = 2

// OpenProbe opens a pool of its own, of at most ProbeConns connections, to
// the MySQL database db is connected to, for readiness checks: db's pool
// can be busy to its limit under load (bulk writes hold a connection each
// for their transaction), and a ping queued behind them would make a
// working replica unready. The pool connects on its first ping; the caller
// closes it. For SQLite it returns nil: an embedded process has one
// connection to a local file and no replica to fail over to.
func OpenProbe(db *gorm.DB) (*sql.DB, error) {
	d, ok := db.Dialector.(*mysql.Dialector)
	if !ok {
		return nil, nil
	}
	cfg, err := mysqldrv.ParseDSN(d.DSN)
	if err != nil {
		return nil, fmt.Errorf("probe database: %w", err)
	}
	conn, err := mysqldrv.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("probe database: %w", err)
	}
	p := sql.OpenDB(conn)
	p.SetMaxOpenConns(ProbeConns)
	p.SetMaxIdleConns(ProbeConns)
	p.SetConnMaxLifetime(10 * time.Minute)
	return p, nil
}

// IsMySQL reports whether db speaks MySQL (as opposed to SQLite).
func IsMySQL(db *gorm.DB) bool { return db.Name() == "mysql" }

// quietCancel drops the log of statements cancelled by their context: at
// shutdown that is expected, and the caller sees the error anyway.
type quietCancel struct{ logger.Interface }

func (q quietCancel) LogMode(l logger.LogLevel) logger.Interface {
	return quietCancel{q.Interface.LogMode(l)}
}

// ParamsFilter passes on the wrapped logger's filter (gorm looks for it on
// the logger it is given), which drops the values of logged statements.
func (q quietCancel) ParamsFilter(ctx context.Context, sql string, params ...any) (string, []any) {
	if f, ok := q.Interface.(gorm.ParamsFilter); ok {
		return f.ParamsFilter(ctx, sql, params...)
	}
	return sql, params
}

func (q quietCancel) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return
	}
	q.Interface.Trace(ctx, begin, func() (string, int64) {
		// Scan logs statements with their values filled in, whatever the
		// filter says (see redactLiterals).
		sql, rows := fc()
		sql = redactLiterals(sql)
		if len(sql) > maxLoggedSQL {
			// A batch of 1,000 rows has 1,000 groups of placeholders.
			sql = fmt.Sprintf("%s… (%d bytes)", sql[:maxLoggedSQL], len(sql))
		}
		return sql, rows
	}, err)
}

// maxLoggedSQL bounds the text of a logged statement.
const maxLoggedSQL = 1000

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

// byIDs reads the rows of T whose IDs are ids, a thousand a query, keyed
// by id(row); an ID with no row is missing from the map.
func byIDs[T any](ctx context.Context, db *gorm.DB, ids []int64, id func(T) int64) (map[int64]T, error) {
	out := make(map[int64]T, len(ids))
	for chunk := range slices.Chunk(ids, 1000) {
		var rows []T
		if err := db.WithContext(ctx).Where("id IN ?", chunk).Find(&rows).Error; err != nil {
			return nil, err
		}
		for _, r := range rows {
			out[id(r)] = r
		}
	}
	return out, nil
}
