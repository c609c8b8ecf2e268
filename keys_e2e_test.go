package chime_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/internal/testenv"
)

func TestHTTPAndOperatorConfig(t *testing.T) {
	c, err := chime.LoadConfig(nil)
	require.NoError(t, err)
	require.Zero(t, c.HTTPReadTimeout, "unset: api.DefaultReadTimeout applies")
	require.Empty(t, c.OperatorKey)
	require.Equal(t, "chime:keys", c.KeysChannel())

	c, err = chime.LoadConfig([]string{"CHIME_HTTP_READ_TIMEOUT=5s", "CHIME_HTTP_WRITE_TIMEOUT=10s", "CHIME_HTTP_IDLE_TIMEOUT=1m",
		"CHIME_HTTP_MAX_HEADER_BYTES=16384", "CHIME_OPERATOR_KEY=" + operatorKey})
	require.NoError(t, err)
	require.Equal(t, []any{5 * time.Second, 10 * time.Second, time.Minute, 16384, operatorKey},
		[]any{c.HTTPReadTimeout, c.HTTPWriteTimeout, c.HTTPIdleTimeout, c.HTTPMaxHeaderBytes, c.OperatorKey})
	for _, tc := range []struct{ env, want string }{
		{"CHIME_HTTP_READ_TIMEOUT=-1s", "CHIME_HTTP_READ_TIMEOUT"},
		{"CHIME_HTTP_WRITE_TIMEOUT=-1s", "CHIME_HTTP_WRITE_TIMEOUT"},
		{"CHIME_HTTP_IDLE_TIMEOUT=-1s", "CHIME_HTTP_IDLE_TIMEOUT"},
		{"CHIME_HTTP_MAX_HEADER_BYTES=-1", "CHIME_HTTP_MAX_HEADER_BYTES"},
		{"CHIME_OPERATOR_KEY=short", "CHIME_OPERATOR_KEY must be at least 32 characters"},
	} {
		_, err := chime.LoadConfig([]string{tc.env})
		require.ErrorContains(t, err, tc.want, tc.env)
	}
}

const operatorKey = "op_0123456789abcdef0123456789abcdef"

// coordinatorAt starts a coordinator on a loopback port of its own and
// returns its API's address.
func (b *bundle) coordinatorAt(id string) string {
	b.t.Helper()
	cfg := b.cfg
	cfg.ReplicaID = id
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b.t, err)
	rdb, err := chime.OpenRedis(b.ctx, cfg.RedisURL)
	require.NoError(b.t, err)
	b.t.Cleanup(func() { rdb.Close() })
	c := chime.NewCoordinator(cfg, b.env.DB, rdb, clock.Real{}, b.env.Log, ln)
	b.group.Go(func() error { return c.Run(b.ctx) })
	return "http://" + ln.Addr().String()
}

// call sends a request with the Authorization header auth and decodes a
// JSON answer into out (if not nil).
func call(t *testing.T, method, url, auth string, out any) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", auth)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	if out != nil {
		require.NoError(t, json.NewDecoder(res.Body).Decode(out))
	}
	return res
}

// Two coordinators as the binaries assemble them, with CHIME_OPERATOR_KEY
// set. Injected: an app created through coordinator 1's operator route
// (with a lower-case "bearer"), its key used on both, then revoked through
// coordinator 1. Checked: the key works on both, answers say no-store and
// nosniff, and coordinator 2 refuses the key within one second of the
// revocation (the bound the issue sets).
func TestKeyRevocationAcrossCoordinators(t *testing.T) {
	b := setup(t)
	b.cfg.OperatorKey = operatorKey
	c1, c2 := b.coordinatorAt("c1"), b.coordinatorAt("c2")
	testenv.WaitUntil(t, 10*time.Second, "both coordinators to serve", func() bool {
		for _, c := range []string{c1, c2} {
			res, err := http.Get(c + "/livez")
			if err != nil {
				return false
			}
			res.Body.Close()
		}
		return true
	})

	body, err := json.Marshal(map[string]string{"name": "shop"})
	require.NoError(t, err)
	req, err := http.NewRequest("POST", c1+"/v1/operator/apps", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "bearer "+operatorKey)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var created api.NewAPIKey
	require.NoError(t, json.NewDecoder(res.Body).Decode(&created))
	res.Body.Close()
	require.Equal(t, http.StatusCreated, res.StatusCode)

	for _, c := range []string{c1, c2} {
		res := call(t, "GET", c+"/v1/reminders", "Bearer "+created.Secret, nil)
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, "no-store", res.Header.Get("Cache-Control"))
		require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
	}
	res = call(t, "DELETE", fmt.Sprintf("%s/v1/operator/apps/%d/keys/%d", c1, created.App.ID, created.Key.ID), "Bearer "+operatorKey, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	testenv.WaitUntil(t, time.Second, "coordinator 2 to refuse the revoked key", func() bool {
		return call(t, "GET", c2+"/v1/reminders", "Bearer "+created.Secret, nil).StatusCode == http.StatusUnauthorized
	})
	require.Equal(t, http.StatusUnauthorized, call(t, "GET", c1+"/v1/reminders", "Bearer "+created.Secret, nil).StatusCode)
}
