// Package chime assembles Chime's parts into the two processes it runs as:
// the coordinator (HTTP API on every replica; planning, firing, ack tracking
// and reaping on the elected leader) and the worker (a stateless asynq
// server that delivers groups). See docs/architecture.md for the design.
package chime
