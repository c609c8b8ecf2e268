// Package chime assembles Chime's parts into the processes it runs as: the
// coordinator (HTTP API on every replica; planning, firing, ack tracking
// and reaping on the elected leader), the worker (a stateless asynq server
// that delivers groups) and the gateway (the WebSocket server for online
// delivery). Open connects a process to MySQL and Redis; RunWithProbes
// serves a worker's or gateway's probes and metrics beside it. See
// docs/architecture.md for the design.
package chime
