package e2e

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/gateway"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/status"
)

// gatewayProcess starts cmd/gateway (bin) as a process with the bundle's
// settings and env, and returns its /ws URL, its metrics address and the
// process.
func (b *bundle) gatewayProcess(bin, name string, env ...string) (string, string, *exec.Cmd) {
	t := b.t
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		return ln.Addr().String()
	}
	addr, metricsAddr := free(), free()
	cmd := exec.Command(bin)
	cmd.Env = append(append(os.Environ(),
		"REDIS_URL="+b.env.RedisURL, "MYSQL_DSN="+b.env.DSN, "CHIME_REDIS_PREFIX="+b.env.Prefix,
		"CHIME_GATEWAY_ADDR="+addr, "CHIME_SECRET_KEYS="+secretKeys, "CHIME_REPLICA_ID="+name, "CHIME_METRICS_ADDR="+metricsAddr,
		"CHIME_HEARTBEAT_INTERVAL=1s", "CHIME_PING_TIMEOUT=1s", "CHIME_PRESENCE_TTL=8s", "CHIME_LOG_LEVEL=warn"), env...)
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
	return "ws://" + addr + "/ws", metricsAddr, cmd
}

// acksReceived reads chime_gateway_acks_received_total (both kinds) from a
// gateway's /metrics.
func acksReceived(metricsAddr string) int {
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "chime_gateway_acks_received_total{"); ok {
			_, v, _ := strings.Cut(rest, "} ")
			f, _ := strconv.ParseFloat(v, 64)
			n += int(f)
		}
	}
	return n
}

// Fault: a gateway process gathering acks and read receipts (flush window
// 5s) is killed with SIGKILL after it has received every client's frame
// and before it applied them. Checked: nothing it received was applied (no
// delivered or read count); when the users reconnect to another gateway
// process, the messages they had acknowledged or read come back; their
// acks and reads there are applied, and the counts are exact: each user
// counted once as sent over the gateway (the replay is not counted again),
// once as delivered or read.
func TestGatewayKilledMidAckBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills gateway processes")
	}
	b := setupOnline(t)
	b.cfg.Online.Heartbeat, b.cfg.Online.PingTimeout, b.cfg.Online.PresenceTTL = time.Second, time.Second, 8*time.Second
	b.startCoordinator("c1")
	b.startWorker("w1")
	bin := build(t, "gateway")
	urlA, metricsA, procA := b.gatewayProcess(bin, "gw-a", "CHIME_GATEWAY_ACK_FLUSH=5s", "CHIME_GATEWAY_ACK_BATCH=10000")
	urlB, _, _ := b.gatewayProcess(bin, "gw-b")

	users := userIDs("m", 6)
	reads := map[string]bool{users[0]: true, users[1]: true}
	ctx := context.Background()
	clients := map[string]*gateway.Client{}
	for _, u := range users {
		clients[u] = b.connect(urlA, u)
		welcome(t, clients[u])
	}
	at1 := b.fireFor("batched", users, nil)
	var id string
	for _, u := range users {
		id = nextMessage(t, clients[u], 30*time.Second).Message.ID
		if reads[u] {
			require.NoError(t, clients[u].Read(ctx, id))
		} else {
			require.NoError(t, clients[u].Ack(ctx, id))
		}
	}
	testenv.WaitUntil(t, 3*time.Second, "gw-a received every ack and read", func() bool { return acksReceived(metricsA) == len(users) })
	require.NoError(t, procA.Process.Signal(os.Kill))
	_, _ = procA.Process.Wait()

	occ := at(b.waitDone("batched", 1, time.Minute), at1)
	require.Len(t, occ, 1)
	require.Equal(t, fmt.Sprintf("o%d", occ[0].ID), id)
	require.Equal(t, map[string]int64{status.Sent: int64(len(users))}, b.statusOf(occ[0].ID)[status.Gateway],
		"the killed gateway applied none of the acks it held")

	for _, u := range users {
		c := b.connect(urlB, u)
		replayed := welcome(t, c)
		require.Len(t, replayed, 1, u)
		require.Equal(t, id, replayed[0].Message.ID, u)
		if reads[u] {
			require.NoError(t, c.Read(ctx, id))
		} else {
			require.NoError(t, c.Ack(ctx, id))
		}
	}
	want := map[string]int64{status.Sent: int64(len(users)), status.Delivered: int64(len(users) - len(reads)), status.Read: int64(len(reads))}
	testenv.WaitUntil(t, 10*time.Second, "gw-b applied the acks and reads", func() bool {
		return maps.Equal(want, b.statusOf(occ[0].ID)[status.Gateway])
	})
	for _, u := range users {
		in := b.inboxOf(u)
		require.Empty(t, in.Pending, u)
		if reads[u] {
			require.Empty(t, in.Unread, u)
		} else {
			require.Len(t, in.Unread, 1, u)
		}
	}
}
