package queue

import (
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// DefaultQueues is how many asynq queues group tasks spread over. One
// suits a single Redis; on a Redis Cluster, where asynq keeps each queue in
// one slot (its keys are tagged with the queue's name), a few per master
// spread the enqueues and dequeues of a fire over the shards.
const DefaultQueues = 1

// MaxQueues bounds the queues group tasks spread over: a worker with
// nothing to do asks each of them on every poll.
const MaxQueues = 64

// slots is the number of Redis Cluster hash slots.
const slots = 16384

// Names returns the n queue names group tasks spread over: base alone for
// n = 1, otherwise base and names "base-<k>" whose hash slots fall in n
// different equal slices of the 16,384 slots. A cluster whose slots are split
// evenly over its masters (as redis-cli --cluster create does) then has the
// queues on as many masters as it can. Every process derives the same names
// from the same base and n.
func Names(base string, n int) []string {
	n = min(max(n, 1), MaxQueues)
	if n == 1 {
		return []string{base}
	}
	out := make([]string, n)
	slice := func(name string) int { return int(Slot(name)) * n / slots }
	out[slice(base)] = base
	for k := 1; ; k++ {
		name := base + "-" + strconv.Itoa(k)
		if i := slice(name); out[i] == "" {
			out[i] = name
			full := true
			for _, s := range out {
				full = full && s != ""
			}
			if full {
				return out
			}
		}
	}
}

// pick returns the queue of the task id among queues: the same for every
// enqueue of that ID, so enqueueing a task again meets its first copy.
func pick(queues []string, id string) string {
	if len(queues) == 1 {
		return queues[0]
	}
	return queues[xxhash.Sum64String(id)%uint64(len(queues))]
}

// Slot returns the Redis Cluster hash slot of the keys asynq writes for the
// queue name ("asynq:{name}:..."): CRC16 (XMODEM) of the name mod 16384.
func Slot(name string) uint16 {
	var crc uint16
	for i := 0; i < len(name); i++ {
		crc ^= uint16(name[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % slots
}
