// Package rscript runs Lua scripts in Redis pipelines.
//
// A pipeline cannot fall back from EVALSHA to EVAL per command the way
// redis.Script.Run does, because errors come back only after the whole
// pipeline ran. Pipelined runs all the commands with EVALSHA; if any of them
// finds its script missing (Redis restarted or was flushed), it loads the
// scripts and runs the pipeline once more. Callers therefore only pipeline
// commands that are safe to repeat. Queue is for the other pipelines: a
// script it queued that Redis did not have runs again alone, and nothing
// else of the pipeline is repeated.
package rscript

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Pipelined fills a pipeline with fill and runs it. Every script fill uses
// must be in scripts (none for a pipeline of plain commands). It returns
// the pipeline's first error other than a command's redis.Nil.
func Pipelined(ctx context.Context, rdb redis.UniversalClient, scripts []*redis.Script, fill func(p redis.Pipeliner)) ([]redis.Cmder, error) {
	for attempt := 0; ; attempt++ {
		p := rdb.Pipeline()
		fill(p)
		cmds, err := p.Exec(ctx)
		if errors.Is(err, redis.Nil) {
			// A command's nil answer comes first; a later command may
			// still have failed.
			err = firstErr(cmds)
		}
		if err == nil || attempt == 1 || !missingScript(cmds) {
			return cmds, err
		}
		for _, s := range scripts {
			if err := s.Load(ctx, rdb).Err(); err != nil {
				return nil, fmt.Errorf("load script: %w", err)
			}
		}
	}
}

// firstErr is the first error of cmds other than redis.Nil.
func firstErr(cmds []redis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	return nil
}

func missingScript(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if err := c.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			return true
		}
	}
	return false
}

// A Cmd is one script queued on a pipeline by Queue.
type Cmd struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
}

// Queue queues script on pipe as EVALSHA. Unlike Pipelined, which runs a
// whole pipeline again when a script was missing, a Cmd is run again on
// its own by Result: the other commands of its pipeline (acks of other
// groups, plain reads) need not be safe to repeat.
func Queue(ctx context.Context, pipe redis.Pipeliner, script *redis.Script, keys []string, args ...any) *Cmd {
	return &Cmd{script: script, keys: keys, args: args, cmd: script.EvalSha(ctx, pipe, keys, args...)}
}

// Result returns the script's reply once its pipeline ran; if Redis did
// not have the script (it restarted or was flushed), it runs the script
// again alone, with EVALSHA and then EVAL as redis.Script.Run does.
func (c *Cmd) Result(ctx context.Context, rdb redis.Scripter) *redis.Cmd {
	if err := c.cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		return c.script.Run(ctx, rdb, c.keys, c.args...)
	}
	return c.cmd
}
