// Package keyspace holds what the Redis keys Chime writes start with, so
// that every package writing keys, and the configuration naming them,
// share one default.
package keyspace

// DefaultPrefix starts every Redis key Chime writes (asynq's own keys
// aside) unless CHIME_REDIS_PREFIX says otherwise.
const DefaultPrefix = "chime:"
