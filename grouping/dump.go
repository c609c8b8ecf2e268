package grouping

import (
	"encoding/binary"
	"errors"
	"sort"
	"strconv"
)

// A group's set is read at fire time with DUMP rather than SMEMBERS.
//
// The set is an intset (integer-like IDs only, at most
// set-max-intset-entries of them), and SMEMBERS answers it with one RESP
// bulk string per member, each formatted by Redis and parsed and allocated
// by the worker: about 59 ns of Redis command time a member, measured on
// 1,950 members drawn from a million IDs (INFO commandstats). DUMP answers
// the intset's own bytes in one string, about 16 ns a member, its LZF
// compression included, and the worker decodes them into one buffer. The
// payload is Redis's RDB serialization of the value, documented with the
// format in Redis's rdb.c and lzf_d.c:
//
//	type (1 byte: 11 is an intset)
//	string: a length, or 0xC3, the compressed length, the length and the
//	        LZF-compressed bytes; the bytes are the intset blob:
//	        encoding (uint32 LE: 2, 4 or 8), count (uint32 LE), then count
//	        signed integers of that width, little-endian, strictly ascending
//	RDB version (2 bytes), CRC64 (8 bytes)
//
// Anything else (a set Redis keeps as a hash table, one holding raw string
// IDs of an old index, a newer serialization) is not guessed at:
// intsetMembers reports errNotIntset and the group is read again with
// SMEMBERS. The CRC is not checked (the bytes come from the Redis server
// over TCP); the structure is, exactly, and so is the intset's order.

// rdbTypeSetIntset is the RDB type of a set encoded as an intset.
const rdbTypeSetIntset = 11

// errNotIntset is a DUMP payload that is not a well-formed intset set.
var errNotIntset = errors.New("not an intset payload")

// intsetMembers returns the members of the set whose DUMP payload is
// payload, as SMEMBERS writes them (decimal, in ascending numeric order),
// or errNotIntset.
func intsetMembers(payload string) ([]string, error) {
	// The type, the string, then the version and the CRC.
	if len(payload) < 1+1+10 || payload[0] != rdbTypeSetIntset {
		return nil, errNotIntset
	}
	body := payload[1 : len(payload)-10]
	blob, rest, err := rdbString(body)
	if err != nil || len(rest) != 0 {
		return nil, errNotIntset
	}
	return intsetDecimal(blob)
}

// rdbString reads one RDB string from the start of b: a length-prefixed
// run of bytes or an LZF-compressed one. Integer-encoded strings are
// refused (an intset blob never is one).
func rdbString(b string) (string, string, error) {
	if len(b) == 0 {
		return "", "", errNotIntset
	}
	if b[0] == 0xC3 { // special encoding 3: LZF
		clen, rest, err := rdbLen(b[1:])
		if err != nil {
			return "", "", err
		}
		ulen, rest, err := rdbLen(rest)
		if err != nil || clen > uint64(len(rest)) || ulen > maxIntsetBlob {
			return "", "", errNotIntset
		}
		out, err := lzfDecompress(rest[:clen], int(ulen))
		if err != nil {
			return "", "", err
		}
		return string(out), rest[clen:], nil
	}
	if b[0]>>6 == 3 {
		return "", "", errNotIntset // an integer encoding
	}
	n, rest, err := rdbLen(b)
	if err != nil || n > uint64(len(rest)) {
		return "", "", errNotIntset
	}
	return rest[:n], rest[n:], nil
}

// maxIntsetBlob bounds the intset a payload may claim to hold: 2^20
// members of 8 bytes, far above any group (MaxDefaultGroupSize), so a
// damaged length cannot make the reader allocate without bound.
const maxIntsetBlob = 8 + 8<<20

// rdbLen reads an RDB length: 6 bits, 14 bits, or a 32- or 64-bit
// big-endian number after 0x80 or 0x81.
func rdbLen(b string) (uint64, string, error) {
	if len(b) == 0 {
		return 0, "", errNotIntset
	}
	switch c := b[0]; {
	case c>>6 == 0:
		return uint64(c & 0x3F), b[1:], nil
	case c>>6 == 1 && len(b) >= 2:
		return uint64(c&0x3F)<<8 | uint64(b[1]), b[2:], nil
	case c == 0x80 && len(b) >= 5:
		return uint64(binary.BigEndian.Uint32([]byte(b[1:5]))), b[5:], nil
	case c == 0x81 && len(b) >= 9:
		return binary.BigEndian.Uint64([]byte(b[1:9])), b[9:], nil
	}
	return 0, "", errNotIntset
}

// lzfDecompress expands LZF data (liblzf's format, which Redis writes)
// into exactly n bytes. Each control byte below 32 is followed by that
// many literal bytes plus one; any other holds a length (its top 3 bits,
// 7 meaning "add the next byte") and the high bits of a distance back into
// the output, whose low byte follows; the reference copies length + 2
// bytes, possibly overlapping what it writes.
func lzfDecompress(in string, n int) ([]byte, error) {
	out := make([]byte, 0, n)
	for i := 0; i < len(in); {
		ctrl := int(in[i])
		i++
		if ctrl < 32 {
			run := ctrl + 1
			if i+run > len(in) || len(out)+run > n {
				return nil, errNotIntset
			}
			out = append(out, in[i:i+run]...)
			i += run
			continue
		}
		length := ctrl >> 5
		if length == 7 {
			if i >= len(in) {
				return nil, errNotIntset
			}
			length += int(in[i])
			i++
		}
		if i >= len(in) {
			return nil, errNotIntset
		}
		ref := len(out) - (ctrl&0x1F)<<8 - int(in[i]) - 1
		i++
		length += 2
		if ref < 0 || len(out)+length > n {
			return nil, errNotIntset
		}
		for k := range length {
			out = append(out, out[ref+k])
		}
	}
	if len(out) != n {
		return nil, errNotIntset
	}
	return out, nil
}

// intsetDecimal returns an intset blob's members in decimal, in the byte
// order sortedUnique gives (see byteOrder) unless some are negative. The
// strings share one buffer: one allocation for all of them, not one each.
func intsetDecimal(blob string) ([]string, error) {
	if len(blob) < 8 {
		return nil, errNotIntset
	}
	b := []byte(blob)
	width := binary.LittleEndian.Uint32(b[0:4])
	count := uint64(binary.LittleEndian.Uint32(b[4:8]))
	if (width != 2 && width != 4 && width != 8) || uint64(len(b)-8) != count*uint64(width) {
		return nil, errNotIntset
	}
	vals := make([]int64, count)
	for i, p := 0, b[8:]; i < len(vals); i, p = i+1, p[width:] {
		switch width {
		case 2:
			vals[i] = int64(int16(binary.LittleEndian.Uint16(p)))
		case 4:
			vals[i] = int64(int32(binary.LittleEndian.Uint32(p)))
		default:
			vals[i] = int64(binary.LittleEndian.Uint64(p))
		}
		if i > 0 && vals[i] <= vals[i-1] {
			return nil, errNotIntset // an intset is strictly ascending
		}
	}
	if len(vals) > 0 && vals[0] >= 0 {
		vals = byteOrder(vals)
	}
	digits := make([]byte, 0, int(count)*(int(width)*5/2+1))
	ends := make([]int, count)
	for i, v := range vals {
		digits = strconv.AppendInt(digits, v, 10)
		ends[i] = len(digits)
	}
	all := string(digits)
	out := make([]string, count)
	start := 0
	for i, end := range ends {
		out[i], start = all[start:end], end
	}
	return out, nil
}

// byteOrder returns vals, ascending and none negative, in the byte order
// of their decimal forms, the order checkpoints compare in ("10" < "9").
// The values of one digit count are a run of vals, in that order already;
// the runs are merged comparing each value as its digits right-padded
// with zeros to 19 (the most an int64 has), the shorter first on a tie
// ("1" < "10"). A group whose IDs all have as many digits is one run and
// is returned as it is.
func byteOrder(vals []int64) []int64 {
	type run struct {
		vals   []int64
		scale  uint64 // 10^(19 - digits)
		digits int
		key    uint64 // the head's digits padded: vals[0] * scale
	}
	var runs []run
	for start := 0; start < len(vals); {
		d := decimalDigits(vals[start])
		// vals ascend, so the run ends at the first value of more digits.
		end := len(vals)
		if d < 19 {
			end = start + sort.Search(len(vals)-start, func(i int) bool { return uint64(vals[start+i]) >= pow10[d] })
		}
		runs = append(runs, run{vals[start:end], pow10[19-d], d, uint64(vals[start]) * pow10[19-d]})
		start = end
	}
	if len(runs) == 1 {
		return vals
	}
	// precedes tells whether a value of key and digits comes before r's
	// head.
	precedes := func(key uint64, digits int, r *run) bool {
		return key < r.key || key == r.key && digits < r.digits
	}
	before := func(a, b *run) bool { return precedes(a.key, a.digits, b) }
	out := make([]int64, 0, len(vals))
	for {
		// The run whose head comes first, and the one after it: the first
		// run's values go out while they come before the second's head.
		var first, second *run
		for i := range runs {
			r := &runs[i]
			switch {
			case len(r.vals) == 0:
			case first == nil || before(r, first):
				first, second = r, first
			case second == nil || before(r, second):
				second = r
			}
		}
		if first == nil {
			return out
		}
		n := len(first.vals)
		if second != nil {
			n = 1
			for n < len(first.vals) && precedes(uint64(first.vals[n])*first.scale, first.digits, second) {
				n++
			}
		}
		out = append(out, first.vals[:n]...)
		first.vals = first.vals[n:]
		if len(first.vals) > 0 {
			first.key = uint64(first.vals[0]) * first.scale
		}
	}
}

// pow10 holds 10^0 to 10^19.
var pow10 = func() (p [20]uint64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// decimalDigits returns the digits of v, not negative: 1 to 19.
func decimalDigits(v int64) int {
	d := 1
	for d < 19 && uint64(v) >= pow10[d] {
		d++
	}
	return d
}
