package rscript_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/rscript"
	"github.com/chime-dev/chime/internal/testenv"
)

// A pipeline of EVALSHA calls to a script Redis has never seen (a fresh
// script body, as after a Redis restart) loads the script and runs again.
func TestPipelinedLoadsMissingScripts(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	// A body of its own, so no other test has loaded it.
	s := redis.NewScript("-- " + env.Prefix + "\nreturn redis.call('INCR', KEYS[1])")
	exists, err := s.Exists(ctx, env.Redis).Result()
	require.NoError(t, err)
	require.Equal(t, []bool{false}, exists)
	var cmds []*redis.Cmd
	_, err = rscript.Pipelined(ctx, env.Redis, []*redis.Script{s}, func(p redis.Pipeliner) {
		cmds = cmds[:0]
		for range 3 {
			cmds = append(cmds, s.EvalSha(ctx, p, []string{env.Prefix + "n"}))
		}
	})
	require.NoError(t, err)
	n, err := cmds[2].Int()
	require.NoError(t, err)
	require.Equal(t, 3, n, "the second run's three increments, after the first run failed whole")
}

// Injected: a pipeline whose first command answers nil (GET of a missing
// key) and whose second fails (INCR of a value that is not a number).
// Checked: Pipelined returns the second's error, not the nil answer's
// silence; a pipeline of nil answers only returns no error.
func TestPipelinedReturnsAnErrorAfterANilAnswer(t *testing.T) {
	env := testenv.NewRedis(t)
	ctx := context.Background()
	require.NoError(t, env.Redis.Set(ctx, env.Prefix+"word", "abc", 0).Err())
	_, err := rscript.Pipelined(ctx, env.Redis, nil, func(p redis.Pipeliner) {
		p.Get(ctx, env.Prefix+"missing")
		p.Incr(ctx, env.Prefix+"word")
	})
	require.ErrorContains(t, err, "not an integer")
	_, err = rscript.Pipelined(ctx, env.Redis, nil, func(p redis.Pipeliner) {
		p.Get(ctx, env.Prefix+"missing")
	})
	require.NoError(t, err)
}
