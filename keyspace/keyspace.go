// Package keyspace holds what the Redis keys Chime writes start with, so
// that every package writing keys, and the configuration naming them,
// share one default.
package keyspace

import (
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// DefaultPrefix starts every Redis key Chime writes (asynq's own keys
// aside) unless CHIME_REDIS_PREFIX says otherwise.
const DefaultPrefix = "chime:"

// UserShards is how many hash tags one app's users are spread over. The
// presence of a shard's users (a hash with a field per user), and each
// user's inbox and status detail (a hash per user), carry the shard's tag,
// {app:uN} (see Shard), so that the scripts for a chunk of users (presence,
// delivery decisions) are one per shard, each in one Redis Cluster slot,
// rather than one per user, and a message's body is kept once per shard.
// 64 tags spread an app over enough slots for a cluster of many masters
// while a chunk of 500 users still needs no more than 64 scripts. It is
// part of the key layout: changing it strands what the keys held.
const UserShards = 64

// UserShard is the shard of an app's user.
func UserShard(app int64, user string) int {
	return int(xxhash.Sum64String(user) % UserShards)
}

// ShardLua is the Lua the scripts over a shard's users share. It defines
// TABLE, the value of the field " table" written into every hash of a
// shard's users (a field per user) to keep it a hash table: Redis keeps a
// hash of up to hash-max-listpack-entries (512) short fields as a
// listpack, and HMGET scans a listpack whole for each field it reads (71
// µs for 9 fields of 313 on Redis 7.0 here), where a hash table finds each
// at once; a value longer than hash-max-listpack-value (64) converts the
// hash for good. User IDs hold no spaces, so the field is no user's.
//
// SKIPLIST does the same for the sorted sets that date a shard's users:
// Redis keeps a sorted set of up to zset-max-listpack-entries (128)
// members as a listpack, where ZADD and ZMSCORE scan the whole listpack
// for each member (dating a new user cost about 9 µs of Redis CPU with a
// shard of 150 users, about half of storing a message for them); a member
// longer than zset-max-listpack-value (64) makes it a skiplist for good,
// where each is found at once. The member is scored +inf, so that no
// range of past dates ever returns it, and holds a space, so it is no
// user's.
//
// It also defines write_shard(hash, index, set, del, at, now, keep): HSET
// the set pairs (with TABLE) and HDEL del in hash, date the users in the
// sorted set index (at: score, user pairs; with SKIPLIST), drop the users index dates
// before now - keep (at most 1,000 a call), and let both keys expire keep
// ms after this write. A user is dated ahead, keep/16 (STEPS) past the
// write, and not dated again while that date is still ahead: updating a
// member of a sorted set costs several times reading its score (ZMSCORE),
// and a user written again soon (acknowledged a moment after being
// stored) would otherwise be dated on every write. A user is therefore
// dropped between keep and keep + keep/16 after its last write.
const ShardLua = `
local TABLE = string.rep('-', 80)
local SKIPLIST = ' skiplist' .. TABLE
local STEPS = 16
local function write_shard(hash, index, set, del, at, now, keep)
  if #set > 0 then redis.call('HSET', hash, ' table', TABLE, unpack(set)) end
  if #del > 0 then redis.call('HDEL', hash, unpack(del)) end
  if #at > 0 then
    local users = {}
    for i = 2, #at, 2 do users[#users + 1] = at[i] end
    local ahead, step, dates = redis.call('ZMSCORE', index, unpack(users)), math.floor(keep / STEPS), {}
    for i, u in ipairs(users) do
      local score = tonumber(at[2*i - 1])
      if not ahead[i] or tonumber(ahead[i]) < score then
        dates[#dates + 1] = score + step; dates[#dates + 1] = u
      end
    end
    if #dates > 0 then redis.call('ZADD', index, 'inf', SKIPLIST, unpack(dates)) end
  end
  local gone = redis.call('ZRANGE', index, '-inf', now - keep, 'BYSCORE', 'LIMIT', 0, 1000)
  if #gone > 0 then
    redis.call('HDEL', hash, unpack(gone))
    redis.call('ZREM', index, unpack(gone))
  end
  redis.call('PEXPIRE', hash, keep)
  redis.call('PEXPIRE', index, keep)
end
`

// Shard is what the keys of a shard's users start with (one hash of all
// their inboxes, with a field per user, say): the prefix, the shard's hash
// tag and '#'.
func Shard(prefix string, app int64, user string) string {
	return prefix + "{" + strconv.FormatInt(app, 10) + ":u" + strconv.Itoa(UserShard(app, user)) + "}#"
}

// UserShardKey is what the keys of one shard of an app's users start with
// (keys that hold many users, such as hashes by user): the prefix and the
// shard's hash tag, the same tag as User's for the users of that shard.
func UserShardKey(prefix string, app int64, shard int) string {
	return prefix + "{" + strconv.FormatInt(app, 10) + ":u" + strconv.Itoa(shard) + "}:"
}

// ByUserShard groups the indexes 0..n-1 by the shard of the app's user
// each names, in the order the shards first appear.
func ByUserShard(n int, who func(i int) (app int64, user string)) [][]int {
	type shard struct {
		app int64
		n   int
	}
	at := map[shard]int{}
	var out [][]int
	for i := range n {
		app, user := who(i)
		s := shard{app, UserShard(app, user)}
		j, ok := at[s]
		if !ok {
			j = len(out)
			at[s] = j
			out = append(out, nil)
		}
		out[j] = append(out[j], i)
	}
	return out
}

// DeliveryEvents is the Redis stream of an app's delivery events (package
// deliveryevent), under the app's own hash tag {de:app}: one stream per
// app, so that one app's backlog never sits in front of another's.
func DeliveryEvents(prefix string, app int64) string {
	return prefix + "{de:" + strconv.FormatInt(app, 10) + "}:stream"
}

// Opens is the set of the users who opened an occurrence's message, under
// the occurrence's own hash tag.
func Opens(prefix string, occurrence int64) string {
	return prefix + "{open:" + strconv.FormatInt(occurrence, 10) + "}:users"
}

// PreferenceState is the key recording whether an app has stored users'
// preferences (package policy), under the app's own hash tag {prefs:app}:
// one key, so the script that sets it touches one Redis Cluster slot.
func PreferenceState(prefix string, app int64) string {
	return prefix + "{prefs:" + strconv.FormatInt(app, 10) + "}:state"
}
