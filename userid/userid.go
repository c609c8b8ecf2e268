// Package userid says which user IDs Chime takes: the API checks those in
// paths and bodies, the gateway the subject of client tokens, with the same
// rule, so that a user the API knows is the user who connects.
package userid

import (
	"unicode"
	"unicode/utf8"
)

// MaxLen is the longest user ID in bytes: what the user_id columns
// (size 191) hold.
const MaxLen = 191

// Check returns what is wrong with id ("is required", "must be at most 191
// bytes", ...), or "" when it is a valid user ID: 1 to MaxLen bytes of
// UTF-8 without spaces or control characters (NUL, newlines and the like).
func Check(id string) string {
	switch {
	case id == "":
		return "is required"
	case len(id) > MaxLen:
		return "must be at most 191 bytes"
	case !utf8.ValidString(id):
		return "must be UTF-8"
	}
	for _, r := range id {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return "must not contain spaces or control characters"
		}
	}
	return ""
}
