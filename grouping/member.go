package grouping

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

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
// The string is rewritten whole by a script on every change (APPEND would
// grow it greedily, to up to twice its length), which costs a copy of the
// group per change; groups hold a few thousand members at most, so that is
// a few tens of kilobytes. Adds do not look for the member first: callers
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
	for i := 0; i < len(packed); {
		h := packed[i]
		i++
		switch {
		case h == headerUUID || h == headerUpperUUID:
			if i+16 > len(packed) {
				return out, fmt.Errorf("packed members: entry at %d cut short", i-1)
			}
			out = append(out, formatUUID(packed[i:i+16], h == headerUpperUUID))
			i += 16
		case h >= 1 && h <= userid.MaxLen:
			if i+int(h) > len(packed) {
				return out, fmt.Errorf("packed members: entry at %d cut short", i-1)
			}
			out = append(out, packed[i:i+int(h)])
			i += int(h)
		default:
			return out, fmt.Errorf("packed members: bad header %#x at %d", h, i-1)
		}
	}
	return out, nil
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
// and drops repeats.
func sortedUnique(ids []string) []string {
	slices.Sort(ids)
	return slices.Compact(ids)
}

// appendScript appends ARGV[1] to the packed string KEYS[1], rewriting it
// so that it takes no more memory than its length.
var appendScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1]) or ''
redis.call('SET', KEYS[1], v .. ARGV[1])
return 1`)

// removeScript removes from the packed string KEYS[1] every entry equal to
// one of ARGV (packed entries), walking the string entry by entry so that
// no match straddles two entries.
var removeScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local drop = {}
for _, e in ipairs(ARGV) do drop[e] = true end
local keep, i, n, gone = {}, 1, #v, 0
while i <= n do
  local h = string.byte(v, i)
  local size = h
  if h >= 240 then size = 16 end
  local e = string.sub(v, i, i + size)
  if drop[e] then gone = gone + 1 else keep[#keep + 1] = e end
  i = i + size + 1
end
if gone == 0 then return 0 end
if #keep == 0 then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], table.concat(keep)) end
return gone`)
