// Package scratch gives a benchmark or load run (package bench, cmd/wsload,
// cmd/bulkload) a MySQL database and Redis keys of its own on shared
// servers, and removes them afterwards, and builds, places and waits for
// the processes the run starts. Tests get theirs from internal/testenv,
// which removes its Redis keys with CleanRedis too.
package scratch

import (
	"context"
	"log/slog"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/chime-dev/chime/store"
)

// OpenDB creates the database name on the MySQL server of mysqlDSN,
// migrates it and connects to it. It returns the database's DSN (for
// processes the run starts) and a function that closes the connection and
// drops the database.
func OpenDB(ctx context.Context, mysqlDSN, name string, log *slog.Logger) (string, *gorm.DB, func(), error) {
	dsn, drop, err := store.CreateDatabase(mysqlDSN, name, log)
	if err != nil {
		return "", nil, nil, err
	}
	db, err := store.Open(dsn, log)
	if err != nil {
		drop()
		return "", nil, nil, err
	}
	closeDB := func() {
		if s, err := db.DB(); err == nil {
			s.Close()
		}
		drop()
	}
	if err := store.Migrate(ctx, db); err != nil {
		closeDB()
		return "", nil, nil, err
	}
	return dsn, db, closeDB, nil
}

// CleanRedis unlinks the keys under prefix and those of the asynq queue
// queue, and takes queue off asynq's list of queues: what a run with a key
// prefix and a queue of its own leaves in a shared Redis. An empty prefix
// unlinks no keys but the queue's. Errors are ignored; ctx bounds the work.
func CleanRedis(ctx context.Context, rdb redis.UniversalClient, prefix, queue string) {
	patterns := []string{"asynq:{" + queue + "}:*"}
	if prefix != "" {
		patterns = append(patterns, prefix+"*")
	}
	for _, pattern := range patterns {
		iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
			if len(keys) == 500 {
				rdb.Unlink(ctx, keys...)
				keys = keys[:0]
			}
		}
		if len(keys) > 0 {
			rdb.Unlink(ctx, keys...)
		}
	}
	rdb.SRem(ctx, "asynq:queues", queue)
}
