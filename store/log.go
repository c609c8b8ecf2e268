package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// sqlLogger is gorm's logger as Open sets it up, with two changes.
//
// Statements are logged without their values: those are user IDs, event
// data, schemas, device tokens and secrets. The wrapped logger is
// configured with ParameterizedQueries, which gorm applies to most
// statements; Scan logs the SQL with its values filled in whatever the
// logger says, so Trace also replaces every quoted literal with "?".
//
// Statements cancelled by their context are not logged: at shutdown that
// is expected, and the caller sees the error anyway.
type sqlLogger struct{ logger.Interface }

func (l sqlLogger) LogMode(level logger.LogLevel) logger.Interface {
	return sqlLogger{l.Interface.LogMode(level)}
}

// ParamsFilter passes the wrapped logger's filter on: gorm asks the logger
// itself, and embedding promotes only the methods of logger.Interface.
func (l sqlLogger) ParamsFilter(ctx context.Context, sql string, params ...any) (string, []any) {
	if f, ok := l.Interface.(gorm.ParamsFilter); ok {
		return f.ParamsFilter(ctx, sql, params...)
	}
	return sql, params
}

func (l sqlLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return
	}
	l.Interface.Trace(ctx, begin, func() (string, int64) {
		sql, rows := fc()
		return redactLiterals(sql), rows
	}, err)
}

// redactLiterals replaces the string literals of sql, quoted with ' (MySQL)
// or " (how gorm fills values in for SQLite), by "?". Identifiers, quoted
// with backticks by both dialects, are kept. A quote inside a literal is
// doubled, which is how gorm writes values in (backslashes are not escapes
// there).
func redactLiterals(sql string) string {
	var b strings.Builder
	b.Grow(len(sql))
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch c {
		case '`':
			end := strings.IndexByte(sql[i+1:], '`')
			if end < 0 {
				b.WriteString(sql[i:])
				return b.String()
			}
			b.WriteString(sql[i : i+end+2])
			i += end + 1
		case '\'', '"':
			j := i + 1
			for ; j < len(sql); j++ {
				if sql[j] == c {
					if j+1 < len(sql) && sql[j+1] == c {
						j++
						continue
					}
					break
				}
			}
			b.WriteByte('?')
			i = j
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
