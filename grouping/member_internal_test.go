package grouping

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIntegerLike(t *testing.T) {
	for id, want := range map[string]bool{
		"0": true, "7": true, "-7": true, "1000000": true,
		"9223372036854775807": true, "-9223372036854775808": true,
		"9223372036854775808": false, // past int64
		"007":                 false, "+7": false, "-0": false, "": false, "1e3": false, "12a": false, " 1": false,
	} {
		require.Equal(t, want, integerLike(id), "%q", id)
	}
}

// Every ID the API accepts comes back from its packed entry byte for byte,
// UUIDs in 17 bytes, others in their length and one.
func TestPackedRoundTrip(t *testing.T) {
	long := strings.Repeat("x", 191)
	for _, tc := range []struct {
		id   string
		size int
	}{
		{"0f8fad5b-d9cb-469f-a165-70867728950e", 17},
		{"0F8FAD5B-D9CB-469F-A165-70867728950E", 17},
		{"00000000-0000-0000-0000-000000000000", 17},
		{"0f8fad5b-D9CB-469f-a165-70867728950e", 37}, // mixed case: raw
		{"0f8fad5b-d9cb-469f-a165-70867728950", 36},  // one digit short
		{"0f8fad5bd9cb469fa16570867728950e", 33},     // no hyphens
		{"0f8fad5b-d9cb-469f-a165_70867728950e", 37},
		{"g f8fad5b-d9cb-469f-a165-70867728950e"[1:], 37},
		{"alice", 6},
		{"007", 4},
		{"😀", 5}, // a UTF-8 lead byte at the start of a payload
		{"ü" + strings.Repeat("é", 20), 43},
		{long, 192},
	} {
		p := appendPacked(nil, tc.id)
		require.Len(t, p, tc.size, "%q", tc.id)
		got, err := unpack(nil, string(p))
		require.NoError(t, err)
		require.Equal(t, []string{tc.id}, got)
	}
	// Entries read back in sequence, wherever each ends.
	ids := []string{"a", "0f8fad5b-d9cb-469f-a165-70867728950e", long, "B", "0F8FAD5B-D9CB-469F-A165-70867728950E"}
	var p []byte
	for _, id := range ids {
		p = appendPacked(p, id)
	}
	got, err := unpack(nil, string(p))
	require.NoError(t, err)
	require.Equal(t, ids, got)
}

// A damaged string is reported, not read as other users.
func TestUnpackDamaged(t *testing.T) {
	whole := string(appendPacked(appendPacked(nil, "alice"), "0f8fad5b-d9cb-469f-a165-70867728950e"))
	for _, bad := range []string{whole[:len(whole)-1], whole[:3], "\x00abc", "\xc8abc", "\xf2" + strings.Repeat("x", 16)} {
		_, err := unpack(nil, bad)
		require.Error(t, err, "%q", bad)
	}
}
