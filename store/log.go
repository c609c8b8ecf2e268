package store

import "strings"

// redactLiterals replaces the string literals of sql, quoted with ' (MySQL)
// or " (how gorm fills values in for SQLite), by "?". gorm logs most
// statements with placeholders (ParameterizedQueries), but Scan logs them
// with their values filled in whatever the logger says: user IDs, location
// names, event data. Identifiers, quoted with backticks by both dialects,
// are kept. A quote inside a literal is
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
