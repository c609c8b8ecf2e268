package store

import "testing"

func TestRedactLiterals(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"INSERT INTO `devices` (`token`) VALUES (?)", "INSERT INTO `devices` (`token`) VALUES (?)"},
		{"SELECT * FROM `t` WHERE `user_id` = 'u-42' AND `app_id` = 7", "SELECT * FROM `t` WHERE `user_id` = ? AND `app_id` = 7"},
		{"VALUES ('it''s','b\\''c', \"sq\"\"lite\")", "VALUES (?,?, ?)"},
		{"SELECT `we'ird` FROM `x\"y`", "SELECT `we'ird` FROM `x\"y`"},
		{"SELECT 'unterminated secret", "SELECT ?"},
		{"SELECT `unterminated", "SELECT `unterminated"},
		{"SELECT 'a\\', 'secret'", "SELECT ?, ?"},
	} {
		if got := redactLiterals(tc.in); got != tc.want {
			t.Errorf("redactLiterals(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
