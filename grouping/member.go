package grouping

import (
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/chime-dev/chime/userid"
)

// A group's members live in two keys, by the form of their IDs:
//
//   - Integer-like IDs (Redis's own test: a decimal int64 written the way
//     strconv.FormatInt writes it) go in the group's set, which Redis keeps
//     as an intset of 2 to 8 bytes a member.
//   - Every other ID goes in the group's packed string: a run of entries,
//     each a header byte and a payload. A header of 1 to MaxLen (191) is
//     the length of the raw ID that follows; headerUUID and headerUpperUUID
//     say that 16 bytes follow, the binary form of a UUID written in
//     canonical 8-4-4-4-12 hexadecimal, lower or upper case. A UUID costs 17
//     bytes there, against about 90 in a set of strings (Redis 7.0 keeps
//     sets of strings in a hash table: an SDS, a dict entry and a bucket a
//     member).
//
// The string is rewritten whole by the script that applies a change
// (applyScript, moveScript; APPEND would grow it greedily, to up to twice
// its length), which costs a copy of the group per change; groups hold a
// few thousand members at most, so that is a few tens of kilobytes. Adds do not look for the member first: callers
// add only members that are new to the group, and a reader drops the
// duplicates that concurrent adds of one user can leave.
//
// An index written before the packed string existed keeps raw string IDs in
// the sets: readers take whatever a set holds, and removals remove from
// both keys, so such an index stays correct until its next rebuild moves
// them.
const (
	headerUUID      = 0xF0
	headerUpperUUID = 0xF1
)

// integerLike reports whether Redis stores id in an intset: it is the
// decimal form of an int64 with no sign but '-', no leading zeros and no
// "-0".
func integerLike(id string) bool {
	if len(id) == 0 || len(id) > 20 {
		return false
	}
	n, err := strconv.ParseInt(id, 10, 64)
	return err == nil && strconv.FormatInt(n, 10) == id
}

// appendPacked appends id's packed entry to dst. id is a valid user ID
// (package userid): 1 to userid.MaxLen bytes, so its length fits a header
// below headerUUID.
func appendPacked(dst []byte, id string) []byte {
	if h, ok := uuidHeader(id); ok {
		dst = append(dst, h)
		for _, part := range [...]string{id[0:8], id[9:13], id[14:18], id[19:23], id[24:36]} {
			dst, _ = hex.AppendDecode(dst, []byte(part))
		}
		return dst
	}
	dst = append(dst, byte(len(id)))
	return append(dst, id...)
}

// uuidHeader returns the header of id if it is a UUID in canonical form in
// one case (so that decoding gives back the same bytes).
func uuidHeader(id string) (byte, bool) {
	if len(id) != 36 {
		return 0, false
	}
	lower, upper := true, true
	for i := range 36 {
		c := id[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return 0, false
			}
		case '0' <= c && c <= '9':
		case 'a' <= c && c <= 'f':
			upper = false
		case 'A' <= c && c <= 'F':
			lower = false
		default:
			return 0, false
		}
	}
	switch {
	case lower:
		return headerUUID, true
	case upper:
		return headerUpperUUID, true
	}
	return 0, false // mixed case: kept raw
}

// unpack appends the IDs of a packed string to out.
func unpack(out []string, packed string) ([]string, error) {
	err := eachPacked(packed, func(id, _ string) { out = append(out, id) })
	return out, err
}

// eachPacked calls f with each ID of a packed string and its entry.
func eachPacked(packed string, f func(id, entry string)) error {
	for i := 0; i < len(packed); {
		h := packed[i]
		switch {
		case h == headerUUID || h == headerUpperUUID:
			if i+17 > len(packed) {
				return fmt.Errorf("packed members: entry at %d cut short", i)
			}
			f(formatUUID(packed[i+1:i+17], h == headerUpperUUID), packed[i:i+17])
			i += 17
		case h >= 1 && h <= userid.MaxLen:
			if i+1+int(h) > len(packed) {
				return fmt.Errorf("packed members: entry at %d cut short", i)
			}
			f(packed[i+1:i+1+int(h)], packed[i:i+1+int(h)])
			i += 1 + int(h)
		default:
			return fmt.Errorf("packed members: bad header %#x at %d", h, i)
		}
	}
	return nil
}

func formatUUID(b string, upper bool) string {
	var s [36]byte
	hex.Encode(s[0:8], []byte(b[0:4]))
	s[8] = '-'
	hex.Encode(s[9:13], []byte(b[4:6]))
	s[13] = '-'
	hex.Encode(s[14:18], []byte(b[6:8]))
	s[18] = '-'
	hex.Encode(s[19:23], []byte(b[8:10]))
	s[23] = '-'
	hex.Encode(s[24:36], []byte(b[10:16]))
	if upper {
		return strings.ToUpper(string(s[:]))
	}
	return string(s[:])
}

// sortedUnique sorts ids in byte order, the order checkpoints compare in,
// and drops repeats. A group's members mostly come as Redis lists an
// intset, ascending numbers, and a sort of them was a quarter of a
// worker's CPU in a million-user fire. Numbers of one length and sign are
// already in byte order (negative ones reversed) and lie together in that
// list, so such a list is cut where the length or sign changes and its
// runs, a few for IDs of similar size, are merged. Anything else (a
// hash-table set, the packed string's IDs) is sorted whole.
func sortedUnique(ids []string) []string {
	if slices.IsSorted(ids) {
		return slices.Compact(ids)
	}
	var runs [maxRuns][]string
	k, start := 0, 0
	for i := 1; i <= len(ids); i++ {
		if i < len(ids) && len(ids[i]) == len(ids[start]) && negative(ids[i]) == negative(ids[start]) {
			continue
		}
		r := ids[start:i]
		if negative(r[0]) {
			slices.Reverse(r)
		}
		if k == maxRuns || !slices.IsSorted(r) {
			slices.Sort(ids)
			return slices.Compact(ids)
		}
		runs[k], k, start = r, k+1, i
	}
	out := make([]string, 0, len(ids))
	heads := runs[:k]
	for {
		best := -1
		for i, h := range heads {
			if len(h) > 0 && (best < 0 || h[0] < heads[best][0]) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		// Take the whole stretch of the best run that comes before every
		// other head: runs of one length mostly follow in long pieces.
		h := heads[best]
		n := len(h)
		for i, o := range heads {
			if i != best && len(o) > 0 {
				n = min(n, max(1, sort.SearchStrings(h, o[0])))
			}
		}
		out = append(out, h[:n]...)
		heads[best] = h[n:]
	}
	return slices.Compact(out)
}

func negative(id string) bool { return id != "" && id[0] == '-' }

// maxRuns bounds the runs sortedUnique merges; IDs of more lengths and
// signs are sorted whole.
const maxRuns = 12
