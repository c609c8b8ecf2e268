package grouping

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
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

// sortedUnique answers what a whole sort and compaction would, whatever
// the IDs: numbers of many lengths and both signs in the order an intset
// lists them, then shuffled (a hash-table set), mixed with UUIDs and
// strings of the same lengths as numbers, repeats, and more lengths than
// it merges.
func TestSortedUnique(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	want := func(ids []string) []string {
		w := slices.Clone(ids)
		slices.Sort(w)
		return slices.Compact(w)
	}
	numbers := func(n int, neg bool, magnitudes int) []string {
		vals := make([]int64, n)
		for i := range vals {
			v := rnd.Int64N(int64(math.Pow10(rnd.IntN(magnitudes) + 1)))
			if neg && rnd.IntN(3) == 0 {
				v = -v
			}
			vals[i] = v
		}
		slices.Sort(vals) // as an intset lists them
		out := make([]string, n)
		for i, v := range vals {
			out[i] = strconv.FormatInt(v, 10)
		}
		return out
	}
	cases := map[string][]string{
		"empty":               {},
		"sorted":              {"1", "2", "3"},
		"intset, two lengths": numbers(2000, false, 2),
		"intset, signs":       numbers(2000, true, 6),
		"intset, 18 lengths":  numbers(3000, true, 18),
	}
	shuffled := numbers(2000, true, 7)
	rnd.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	cases["hash-table set"] = shuffled
	mixed := numbers(500, false, 4)
	for i := range 300 {
		mixed = append(mixed, fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", rnd.Uint32(), i, i, i, i), "ab"+strconv.Itoa(i%50), "0"+strconv.Itoa(i%90))
	}
	mixed = append(mixed, mixed[:100]...)
	cases["packed and repeats"] = mixed
	for name, ids := range cases {
		require.Equal(t, want(ids), sortedUnique(slices.Clone(ids)), name)
	}
}

// BenchmarkSortedUnique compares the run merge with the whole sort on a
// group as an intset lists it (3,200 IDs of six and seven digits).
func BenchmarkSortedUnique(b *testing.B) {
	ids := make([]string, 3200)
	for i := range ids {
		ids[i] = strconv.Itoa(990_000 + i*7)
	}
	b.Run("runs", func(b *testing.B) {
		for b.Loop() {
			sortedUnique(slices.Clone(ids))
		}
	})
	b.Run("sort", func(b *testing.B) {
		for b.Loop() {
			w := slices.Clone(ids)
			slices.Sort(w)
			_ = slices.Compact(w)
		}
	})
}
