package testenv

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster starts a Redis Cluster of masters nodes on free loopback
// ports, from the redis-server binary on PATH (scripts/testenv.sh installs
// it), and returns its redis+cluster:// URL. The nodes keep their data in the
// test's temporary directory and are killed when the test ends. Without
// redis-server the test is skipped, or fails under
// CHIME_REQUIRE_INTEGRATION=1.
//
// The slots are split evenly with CLUSTER ADDSLOTSRANGE and the nodes meet
// with CLUSTER MEET, which is what redis-cli --cluster create does, without
// needing redis-cli.
func RedisCluster(t testing.TB, masters int) string {
	t.Helper()
	bin := redisServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type node struct {
		port, bus int
		rdb       *redis.Client
	}
	nodes := make([]node, masters)
	for i := range nodes {
		nodes[i].port, nodes[i].bus, nodes[i].rdb = startClusterNode(ctx, t, bin, i)
	}
	const slots = 16384
	for i, n := range nodes {
		from, to := i*slots/masters, (i+1)*slots/masters-1
		if err := n.rdb.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", from, to).Err(); err != nil {
			t.Fatalf("cluster addslotsrange: %v", err)
		}
		if i > 0 {
			if err := nodes[0].rdb.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", n.port, n.bus).Err(); err != nil {
				t.Fatalf("cluster meet: %v", err)
			}
		}
	}
	WaitUntil(t, 30*time.Second, "the cluster to agree", func() bool {
		for _, n := range nodes {
			info, err := n.rdb.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(masters)) {
				return false
			}
		}
		return true
	})
	url := "redis+cluster://127.0.0.1:" + strconv.Itoa(nodes[0].port)
	for i, n := range nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		url += fmt.Sprintf("%saddr=127.0.0.1:%d", sep, n.port)
	}
	return url
}

// freePort returns a loopback TCP port nothing listens on right now.
// startClusterNode starts cluster node i on free ports and waits until it
// answers. A port found free can be taken by another process before the
// server binds it (test packages run in parallel), and the server then
// exits at once: the node is started again on other ports, at most three
// times, and a failure names the server's last words.
func startClusterNode(ctx context.Context, t testing.TB, bin string, i int) (port, bus int, rdb *redis.Client) {
	t.Helper()
	var last string
	for attempt := range 3 {
		dir := filepath.Join(t.TempDir(), "node"+strconv.Itoa(i)+"-"+strconv.Itoa(attempt))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// The cluster bus port is set explicitly: port+10000 (the default)
		// can fall outside the port range for ephemeral ports.
		port, bus = freePort(t), freePort(t)
		cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-node-timeout", "5000",
			"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no")
		logPath := filepath.Join(dir, "redis.log")
		logf, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-exited
			logf.Close()
		})
		rdb = redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
		t.Cleanup(func() { rdb.Close() })
		if answered(ctx, rdb, exited, 30*time.Second) {
			return port, bus, rdb
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			last = cmp.Or(lastLine(string(b)), "(no output)")
		default:
			t.Fatalf("redis-server on port %d did not answer within 30s", port)
		}
	}
	t.Fatalf("redis-server exited at start three times; last: %s", last)
	return 0, 0, nil
}

// answered waits up to timeout for rdb's server to answer, and gives up
// early once exited is closed.
func answered(ctx context.Context, rdb *redis.Client, exited <-chan struct{}, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for rdb.Ping(ctx).Err() != nil {
		select {
		case <-exited:
			return false
		case <-deadline:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
