package chime_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/presence"
	"github.com/chime-dev/chime/status"
)

// Fault: a gateway process is killed with SIGKILL while five users are
// connected to it. Checked: (1) a reminder fired while their routes still
// point at the dead gateway (published into its stream, which nobody reads)
// is not lost; (2) the users stop counting as online within the presence TTL
// of the kill (the stated bound); (3) a reminder fired after that goes to
// the fallback and the inbox; (4) when the users reconnect to another
// gateway process, both messages are replayed to each of them.
func TestGatewayKilledLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills gateway processes")
	}
	const heartbeat, ttl = time.Second, 8 * time.Second
	b := setupOnline(t)
	b.cfg.Online.Heartbeat, b.cfg.Online.PingTimeout, b.cfg.Online.PresenceTTL = heartbeat, heartbeat, ttl
	b.startCoordinator("c1")
	b.startWorker("w1")

	bin := build(t, "gateway")
	start := func(name string) (string, *exec.Cmd) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(),
			"REDIS_URL="+b.env.RedisURL, "MYSQL_DSN="+b.env.DSN, "CHIME_REDIS_PREFIX="+b.env.Prefix,
			"CHIME_GATEWAY_ADDR="+addr, "CHIME_SECRET_KEYS="+secretKeys, "CHIME_REPLICA_ID="+name, "CHIME_METRICS_ADDR=127.0.0.1:0",
			"CHIME_HEARTBEAT_INTERVAL="+heartbeat.String(), "CHIME_PING_TIMEOUT="+heartbeat.String(),
			"CHIME_PRESENCE_TTL="+ttl.String(), "CHIME_LOG_LEVEL=warn")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
		testenv.WaitUntil(t, 20*time.Second, name+" up", func() bool {
			resp, err := http.Get("http://" + addr + "/healthz")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil
		})
		return "ws://" + addr + "/ws", cmd
	}
	urlA, procA := start("gw-a")
	urlB, _ := start("gw-b")

	users := userIDs("k", 5)
	for _, u := range users {
		welcome(t, b.connect(urlA, u))
	}
	reg := presence.New(presence.Config{Prefix: b.env.Prefix}, b.env.Redis)
	ctx := context.Background()
	online, err := reg.Lookup(ctx, b.appID(), users)
	require.NoError(t, err)
	require.Len(t, online, len(users))

	require.NoError(t, procA.Process.Signal(os.Kill))
	_, _ = procA.Process.Wait()
	killed := time.Now()

	// (1) Fired while the dead gateway's routes are still live.
	at1 := b.fireFor("first", users, nil)
	occ1 := at(b.waitDone("first", 1, time.Minute), at1)
	require.Len(t, occ1, 1)
	require.EqualValues(t, len(users), b.statusOf(occ1[0].ID)[status.Gateway][status.Sent],
		"the first reminder was published to the dead gateway (its routes had not expired yet)")
	require.Zero(t, b.sink.Stats().Users)

	// (2) Offline within the bound.
	testenv.WaitUntil(t, ttl+2*time.Second, "the dead gateway's users offline", func() bool {
		online, err := reg.Lookup(ctx, b.appID(), users)
		return err == nil && len(online) == 0
	})
	t.Logf("users offline %v after the kill (bound: presence TTL %v after the last refresh)", time.Since(killed).Round(time.Millisecond), ttl)

	// (3) Fired while they are offline: fallback and inbox.
	at2 := b.fireFor("second", users, nil)
	occ2 := at(b.waitDone("second", 1, time.Minute), at2)
	require.Len(t, occ2, 1)
	require.Equal(t, len(users), b.sink.Stats().Users, "offline users went to the fallback")

	// (4) Reconnect to the other gateway: both are replayed.
	want := []string{fmt.Sprintf("o%d", occ1[0].ID), fmt.Sprintf("o%d", occ2[0].ID)}
	for _, u := range users {
		var got []string
		for _, f := range welcome(t, b.connect(urlB, u)) {
			got = append(got, f.Message.ID)
		}
		require.ElementsMatch(t, want, got, u)
	}
}
