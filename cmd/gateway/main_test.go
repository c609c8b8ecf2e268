package main

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/seal"
)

// Bad configuration stops the gateway with a one-line error before it
// listens.
func TestRunRefusesBadConfiguration(t *testing.T) {
	env := testenv.New(t)
	keys, err := seal.NewKey("k1")
	require.NoError(t, err)
	base := []string{"REDIS_URL=" + env.RedisURL, "MYSQL_DSN=" + env.DSN, "CHIME_GATEWAY_ADDR=127.0.0.1:0"}
	for _, tc := range []struct {
		extra []string
		want  string
	}{
		{nil, "CHIME_SECRET_KEYS is required by the gateway"},
		{[]string{"CHIME_SECRET_KEYS=" + keys, "CHIME_PRESENCE_TTL=5s"}, "CHIME_PRESENCE_TTL"},
		{[]string{"CHIME_SECRET_KEYS=" + keys, "CHIME_INBOX_CAP=0"}, "CHIME_INBOX_CAP"},
		{[]string{"CHIME_SECRET_KEYS=" + keys, "CHIME_GATEWAY_MAX_CONNS_PER_USER=-1"}, "CHIME_GATEWAY_MAX_CONNS_PER_USER"},
		{[]string{"CHIME_SECRET_KEYS=" + keys, "CHIME_TOKEN_MAX_LIFETIME=-1h"}, "CHIME_TOKEN_MAX_LIFETIME"},
	} {
		err := run(context.Background(), append(append([]string{}, base...), tc.extra...))
		require.ErrorContains(t, err, tc.want)
	}
	err = run(context.Background(), []string{"PATH=" + os.Getenv("PATH")})
	require.ErrorContains(t, err, "REDIS_URL and MYSQL_DSN are required")
}
