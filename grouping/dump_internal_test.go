package grouping

import (
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// LZF data written by hand from liblzf's format: literal runs, a back
// reference that overlaps what it writes, and one whose length takes the
// extra byte.
func TestLZFDecompress(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"a literal run", "\x02abc", "abc"},
		// "ab", then 6 bytes from 2 back (length 4 = ctrl>>5 of 0x80, +2),
		// overlapping: ababab.
		{"an overlapping reference", "\x01ab\x80\x01", "abababab"},
		// Length 7 + 3 extra + 2 = 12 bytes from 1 back.
		{"a long reference", "\x00x\xe0\x03\x00", "xxxxxxxxxxxxx"},
		{"literal, reference, literal", "\x02abc\x20\x02\x00z", "abcabcz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lzfDecompress(tc.in, len(tc.want))
			require.NoError(t, err)
			require.Equal(t, tc.want, string(got))
		})
	}
	for _, tc := range []struct {
		name, in string
		n        int
	}{
		{"a literal run cut short", "\x05abc", 6},
		{"a reference before the start", "\x00a\x20\x05", 4},
		{"a reference with its distance missing", "\x00a\x20", 4},
		{"a long reference with its length missing", "\x00a\xe0", 12},
		{"more than announced", "\x02abc", 2},
		{"less than announced", "\x02abc", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := lzfDecompress(tc.in, tc.n)
			require.ErrorIs(t, err, errNotIntset)
		})
	}
}

func TestRDBLen(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"\x00", 0}, {"\x3f", 63}, {"\x40\x40", 64}, {"\x7f\xff", 16383},
		{"\x80\x00\x00\x40\x00", 16384}, {"\x81\x00\x00\x00\x01\x00\x00\x00\x00", 1 << 32},
	} {
		n, rest, err := rdbLen(tc.in + "tail")
		require.NoError(t, err, "%q", tc.in)
		require.Equal(t, tc.want, n, "%q", tc.in)
		require.Equal(t, "tail", rest, "%q", tc.in)
	}
	for _, in := range []string{"", "\x40", "\x80\x00\x00", "\x81\x00", "\xc0", "\x82"} {
		_, _, err := rdbLen(in)
		require.ErrorIs(t, err, errNotIntset, "%q", in)
	}
}

// blob is an intset of vals at width bytes a member.
func blob(width int, vals ...int64) string {
	b := binary.LittleEndian.AppendUint32(nil, uint32(width))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(vals)))
	for _, v := range vals {
		switch width {
		case 2:
			b = binary.LittleEndian.AppendUint16(b, uint16(v))
		case 4:
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		default:
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		}
	}
	return string(b)
}

func TestIntsetDecimal(t *testing.T) {
	for _, tc := range []struct {
		width int
		vals  []int64
	}{
		{2, []int64{-32768, -1, 0, 7, 32767}},
		{4, []int64{-2147483648, -40000, 9, 1000000, 2147483647}},
		{8, []int64{-9223372036854775808, -1, 90000000000, 9223372036854775807}},
		{2, nil},
		{2, []int64{0, 1, 9, 10, 11, 99, 100, 32767}},
		{4, []int64{5, 40, 41, 400, 401, 4000, 2147483647}},
		{8, []int64{1, 10, 100, 1000000000000, 9223372036854775807}},
	} {
		got, err := intsetDecimal(blob(tc.width, tc.vals...))
		require.NoError(t, err)
		want := []string{}
		for _, v := range tc.vals {
			want = append(want, strconv.FormatInt(v, 10))
		}
		if len(tc.vals) > 0 && tc.vals[0] >= 0 {
			slices.Sort(want) // byte order, as checkpoints compare
		} // negative IDs: numeric order, for sortedUnique to sort
		require.Equal(t, want, append([]string{}, got...), "%v", tc.vals)
	}
	for name, b := range map[string]string{
		"too short":          "\x02\x00\x00",
		"width 3":            blob(2, 1, 2)[:0] + "\x03\x00\x00\x00\x01\x00\x00\x00abc",
		"count too high":     blob(2, 1, 2)[:4] + "\x03\x00\x00\x00" + blob(2, 1, 2)[8:],
		"a byte left over":   blob(4, 1, 2) + "x",
		"not ascending":      blob(4, 5, 3),
		"a member repeated":  blob(8, 5, 5),
		"negative not first": blob(2, 1, -1),
	} {
		_, err := intsetDecimal(b)
		require.ErrorIs(t, err, errNotIntset, name)
	}
}

// The payload of a set: type, string, version and CRC (not checked).
func payloadOf(str string) string { return "\x0b" + str + "\x0a\x00" + "crc64-le" }

func TestIntsetMembersRefusesOtherPayloads(t *testing.T) {
	small := blob(2, 1, 2, 3)
	got, err := intsetMembers(payloadOf(string(rune(len(small))) + small))
	require.NoError(t, err)
	require.Equal(t, []string{"1", "2", "3"}, got)
	for name, p := range map[string]string{
		"empty":                "",
		"a hash-table set":     "\x02" + payloadOf("")[1:],
		"a listpack set":       "\x14" + payloadOf(string(rune(len(small))) + small)[1:],
		"an integer string":    payloadOf("\xc0\x07"),
		"a string cut short":   payloadOf(string(rune(len(small)+1)) + small),
		"bytes after the set":  payloadOf(string(rune(len(small))) + small + "x"),
		"no version and CRC":   payloadOf(string(rune(len(small))) + small)[:1+1+len(small)],
		"LZF longer than sent": payloadOf("\xc3\x10\x0e\x0dab"),
		"LZF past the bound":   payloadOf("\xc3\x01\x81\x00\x00\x00\x01\x00\x00\x00\x00\x00"),
	} {
		_, err := intsetMembers(p)
		require.ErrorIs(t, err, errNotIntset, name)
	}
	// Whatever a damaged payload holds, decoding it returns an error or
	// members, never panics.
	good := payloadOf(string(rune(len(small))) + small)
	for i := range len(good) {
		for _, c := range []byte{0x00, 0x3f, 0x40, 0x80, 0xc3, 0xff} {
			b := []byte(good)
			b[i] = c
			require.NotPanics(t, func() { _, _ = intsetMembers(string(b)) })
		}
	}
}

// byteOrder sorts as a sort of the decimal strings would, for IDs of
// every digit count from 1 to 19.
func TestByteOrderIsTheStringsOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		seen := map[int64]bool{}
		var vals []int64
		for range 1 + rng.IntN(300) {
			v := rng.Int64N(int64(pow10[1+rng.IntN(18)])) // 1 to 18 digits
			if round%7 == 0 {
				v = rng.Int64N(1200) // ties: 1, 10, 100, 1000 ...
			}
			if !seen[v] {
				seen[v] = true
				vals = append(vals, v)
			}
		}
		if round == 1 {
			vals = append(vals, 9223372036854775807, 1000000000000000000)
		}
		if round%11 == 0 {
			// A group of consecutive or evenly spaced IDs across digit
			// counts (a bench's): long stretches of one run between others.
			vals = nil
			step, n := int64(1+rng.IntN(600)), 1+rng.IntN(3000)
			for v := int64(rng.IntN(20)); len(vals) < n; v += step {
				vals = append(vals, v)
			}
		}
		slices.Sort(vals)
		want := make([]string, len(vals))
		for i, v := range vals {
			want[i] = strconv.FormatInt(v, 10)
		}
		slices.Sort(want)
		got := byteOrder(slices.Clone(vals))
		strs := make([]string, len(got))
		for i, v := range got {
			strs[i] = strconv.FormatInt(v, 10)
		}
		require.Equal(t, want, strs, "round %d", round)
	}
}

// BenchmarkByteOrder orders a group of the bench's shape: 1,953 IDs of a
// million, one in 512 (1 to 7 digits).
func BenchmarkByteOrder(b *testing.B) {
	vals := make([]int64, 0, 1953)
	for v := int64(7); v <= 1_000_000; v += 512 {
		vals = append(vals, v)
	}
	work := make([]int64, len(vals))
	b.ReportAllocs()
	for b.Loop() {
		copy(work, vals)
		byteOrder(work)
	}
}
