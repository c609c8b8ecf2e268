package userid_test

import (
	"strings"
	"testing"

	"github.com/chime-dev/chime/userid"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"user-42", ""},
		{"فاطمة", ""},
		{strings.Repeat("a", 191), ""},
		{"", "is required"},
		{strings.Repeat("a", 192), "must be at most 191 bytes"},
		{"a\xffb", "must be UTF-8"},
		{"a b", "must not contain spaces or control characters"},
		{"a\x00b", "must not contain spaces or control characters"},
		{"a\nb", "must not contain spaces or control characters"},
		{"a\u0085b", "must not contain spaces or control characters"},
	} {
		if got := userid.Check(tc.id); got != tc.want {
			t.Errorf("Check(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
}
