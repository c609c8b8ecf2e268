package chime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
	mysqldrv "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/chime-dev/chime/store"
)

// DefaultStartTimeout is how long a process waits at start for Redis and
// MySQL to answer (CHIME_START_TIMEOUT). Pods of a rollout or a cluster
// restart start in any order: a Redis still loading its AOF or a MariaDB
// not yet listening is waited for, not a crash loop.
const DefaultStartTimeout = 60 * time.Second

// Each attempt is bounded on its own, so that a server that accepts
// connections but does not answer is tried again rather than waited on
// for the whole start timeout.
const (
	startAttemptTimeout = 5 * time.Second
	startFirstWait      = 250 * time.Millisecond
	startMaxWait        = 5 * time.Second
)

// await calls try until it succeeds, retrying with exponential backoff
// and jitter for up to timeout; it logs every failed attempt at warn with
// the attempt number and the wait before the next. An error for which
// retryable says false ends the wait at once: waiting does not fix a wrong
// password. The error it returns is one line, naming what, how long it
// waited and the last attempt's error.
func await(ctx context.Context, log *slog.Logger, what string, timeout time.Duration,
	retryable func(error) bool, try func(context.Context) error) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = startFirstWait, startMaxWait
	var last error
	attempt := 0
	_, err := backoff.Retry(wctx, func() (struct{}, error) {
		attempt++
		actx, cancel := context.WithTimeout(wctx, startAttemptTimeout)
		defer cancel()
		err := try(actx)
		switch {
		case err == nil:
			return struct{}{}, nil
		case wctx.Err() != nil && last != nil:
			// Cut short by the start timeout: the previous attempt's
			// error says more than "deadline exceeded".
			return struct{}{}, last
		case !retryable(err):
			return struct{}{}, backoff.Permanent(err)
		}
		last = err
		return struct{}{}, err
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, next time.Duration) {
		log.Warn(what+" not ready; retrying", "attempt", attempt, "wait", next.Round(time.Millisecond), "err", err)
	}))
	switch {
	case err == nil:
		if attempt > 1 {
			log.Info(what+" ready", "attempts", attempt)
		}
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", what, ctx.Err())
	case wctx.Err() != nil:
		err = last
		if err == nil {
			err = wctx.Err()
		}
		return fmt.Errorf("%s not ready after %s (%d attempts): %w", what, timeout, attempt, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// redisRetryable tells the Redis errors worth waiting out at start: no
// answer at all (refused, unreachable, timed out), or a server that
// answers that it cannot serve yet (loading its dataset, a cluster
// without a master, too many clients). Other error replies (a wrong
// password, a missing permission, an invalid database) are final.
func redisRetryable(err error) bool {
	var reply redis.Error
	if !errors.As(err, &reply) {
		return true
	}
	return redis.IsLoadingError(err) || redis.IsClusterDownError(err) || redis.IsTryAgainError(err) ||
		redis.IsMasterDownError(err) || redis.IsMaxClientsError(err) || redis.HasErrorPrefix(err, "BUSY")
}

// MySQL's answers that waiting does not change: access denied (to the
// server or the database) and an unknown database.
var mysqlFinal = map[uint16]bool{1044: true, 1045: true, 1049: true, 1698: true}

// mysqlRetryable tells the MySQL errors worth waiting out at start:
// everything but a DSN that does not parse and the answers in mysqlFinal
// (a server starting or shutting down, too many connections, no answer at
// all).
func mysqlRetryable(err error) bool {
	if errors.Is(err, store.ErrBadDSN) {
		return false
	}
	var me *mysqldrv.MySQLError
	return !errors.As(err, &me) || !mysqlFinal[me.Number]
}
