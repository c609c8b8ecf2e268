package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/testenv"
)

// withAddr returns dsn with its server address replaced by addr.
func withAddr(t *testing.T, dsn, addr string) (string, string) {
	t.Helper()
	cfg, err := mysqldrv.ParseDSN(dsn)
	require.NoError(t, err)
	real := cfg.Addr
	cfg.Addr = addr
	return cfg.FormatDSN(), real
}

// ready waits until url answers 200.
func ready(t *testing.T, timeout time.Duration, what, url string) {
	t.Helper()
	testenv.WaitUntil(t, timeout, what, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// retried waits until p has logged a failed attempt at what (the warn line
// with the attempt number and the next wait) whose error contains cause.
func retried(t *testing.T, p *proc, what, cause string) {
	t.Helper()
	testenv.WaitUntil(t, 30*time.Second, what+" retried after "+cause, func() bool {
		select {
		case err := <-p.exited:
			p.exited <- err // for the cleanup
			t.Fatalf("the process exited (%v) instead of waiting for %s", err, what)
		default:
		}
		for _, l := range strings.Split(p.log.String(), "\n") {
			if strings.Contains(l, "level=WARN") && strings.Contains(l, `msg="`+what+` not ready; retrying"`) &&
				strings.Contains(l, "attempt=") && strings.Contains(l, "wait=") && strings.Contains(l, cause) {
				return true
			}
		}
		return false
	})
}

// Injected: a real redis-server restarted on a dataset that takes seconds
// to load (8,000 keys, key-load-delay 1 ms each, events processed every
// KB so that it answers LOADING meanwhile), and a coordinator process
// started while it loads. Checked: the coordinator does not exit on
// "LOADING Redis is loading the dataset in memory"; it logs the failed
// attempts at warn with their numbers and waits, and once the dataset is
// loaded it serves /readyz with 200.
func TestStartWaitsForRedisLoading(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a process and a redis-server")
	}
	b := setup(t)
	b.cfg.AckTimeout = 5 * time.Second
	bin := build(t, "coordinator")
	port, dir := testenv.FreePort(t), t.TempDir()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	ctx := context.Background()

	stop := testenv.RedisServer(t, port, dir, "--save", "")
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	testenv.WaitUntil(t, 30*time.Second, "the first redis-server", func() bool { return rdb.Ping(ctx).Err() == nil })
	for i := 0; i < 8000; i += 500 {
		kv := make([]any, 0, 1000)
		for j := i; j < i+500; j++ {
			kv = append(kv, fmt.Sprintf("filler:%d", j), strings.Repeat("x", 64))
		}
		require.NoError(t, rdb.MSet(ctx, kv...).Err())
	}
	require.NoError(t, rdb.Save(ctx).Err())
	stop()

	testenv.RedisServer(t, port, dir, "--save", "", "--key-load-delay", "1000",
		"--loading-process-events-interval-bytes", "1024")
	testenv.WaitUntil(t, 30*time.Second, "redis to answer LOADING", func() bool {
		return redis.IsLoadingError(rdb.Ping(ctx).Err())
	})
	api := loopbackAddr(t)
	p := b.spawn(bin, "c1", "REDIS_URL=redis://"+addr+"/0", "CHIME_HTTP_ADDR="+api)
	retried(t, p, "redis", "LOADING")
	ready(t, 2*time.Minute, "the coordinator to be ready", "http://"+api+"/readyz")
	require.NoError(t, rdb.Ping(ctx).Err(), "redis has loaded")
}

// Injected: the process starts while nothing listens at its MySQL or
// Redis address; a moment later (once it has logged a failed attempt) the
// address starts relaying to the real MariaDB, or a real redis-server
// starts there. Checked, for the worker, the gateway and chime migrate:
// each waits, logging each failed attempt ("connection refused") at warn
// with its number and the next wait, and then comes up: the worker and
// the gateway answer /readyz with 200, chime migrate exits 0.
func TestStartWaitsForStoresNotListening(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	b := setup(t)
	b.cfg.AckTimeout = 5 * time.Second
	bins := map[string]string{}
	for _, name := range []string{"worker", "gateway", "chime"} {
		bins[name] = build(t, name)
	}

	t.Run("worker/mysql", func(t *testing.T) {
		late := loopbackAddr(t)
		dsn, real := withAddr(t, b.env.DSN, late)
		metrics := loopbackAddr(t)
		p := b.spawn(bins["worker"], "w1", "MYSQL_DSN="+dsn, "CHIME_METRICS_ADDR="+metrics)
		retried(t, p, "mysql", "connection refused")
		testenv.Forward(t, late, real)
		ready(t, time.Minute, "the worker to be ready", "http://"+metrics+"/readyz")
	})
	t.Run("gateway/redis", func(t *testing.T) {
		port := testenv.FreePort(t)
		metrics := loopbackAddr(t)
		p := b.spawn(bins["gateway"], "g1", "REDIS_URL=redis://127.0.0.1:"+strconv.Itoa(port)+"/0",
			"CHIME_SECRET_KEYS="+secretKeys, "CHIME_GATEWAY_ADDR="+loopbackAddr(t), "CHIME_METRICS_ADDR="+metrics)
		retried(t, p, "redis", "connection refused")
		testenv.RedisServer(t, port, t.TempDir(), "--save", "")
		ready(t, time.Minute, "the gateway to be ready", "http://"+metrics+"/readyz")
	})
	t.Run("chime migrate/mysql", func(t *testing.T) {
		late := loopbackAddr(t)
		dsn, real := withAddr(t, b.env.DSN, late)
		p := b.spawnArgs(bins["chime"], []string{"migrate"}, "m1", "MYSQL_DSN="+dsn)
		retried(t, p, "mysql", "connection refused")
		testenv.Forward(t, late, real)
		require.Zero(t, p.waitExit(t, time.Minute), "chime migrate's exit status")
	})
}

// Injected: nothing ever listens at the process's MySQL (coordinator) or
// Redis (worker) address, with CHIME_START_TIMEOUT=1500ms. Checked: the
// process retries, then exits with status 1 and one line on stderr besides
// its log, naming the store, the start timeout, the number of attempts
// and the last error.
func TestStartGivesUpAfterTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	b := setup(t)
	b.cfg.AckTimeout = 5 * time.Second
	for _, tc := range []struct {
		name, store string
		env         func(dead string) string
	}{
		{"coordinator", "mysql", func(dead string) string { dsn, _ := withAddr(t, b.env.DSN, dead); return "MYSQL_DSN=" + dsn }},
		{"worker", "redis", func(dead string) string { return "REDIS_URL=redis://" + dead + "/0" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := build(t, tc.name)
			p := b.spawn(bin, "x1", tc.env(loopbackAddr(t)), "CHIME_START_TIMEOUT=1500ms", "CHIME_HTTP_ADDR="+loopbackAddr(t))
			require.Equal(t, 1, p.waitExit(t, time.Minute), "exit status")
			var own []string
			for _, l := range strings.Split(strings.TrimSpace(p.log.String()), "\n") {
				if !strings.HasPrefix(l, "time=") {
					own = append(own, l)
				}
			}
			require.Len(t, own, 1, "one line besides the log:\n%s", p.log)
			require.Regexp(t, `^`+tc.name+`: `+tc.store+` not ready after 1.5s \([0-9]+ attempts\): .*connection refused$`, own[0])
			require.Contains(t, p.log.String(), `msg="`+tc.store+` not ready; retrying" attempt=1 `)
		})
	}
}

// Injected: a MySQL user that does not exist (the real MariaDB answers
// "Access denied", error 1045), with the default start timeout of a
// minute. Checked: chime migrate fails at once, without a single retry,
// since waiting does not fix credentials; it would log a retry and run
// past the test's wait otherwise.
func TestStartFailsAtOnceOnAccessDenied(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a process")
	}
	b := setup(t)
	b.cfg.AckTimeout = 5 * time.Second
	cfg, err := mysqldrv.ParseDSN(b.env.DSN)
	require.NoError(t, err)
	cfg.User, cfg.Passwd = "nobody_"+testenv.ID(), "wrong"
	p := b.spawnArgs(build(t, "chime"), []string{"migrate"}, "m1", "MYSQL_DSN="+cfg.FormatDSN())
	require.Equal(t, 1, p.waitExit(t, 30*time.Second), "exit status")
	require.NotContains(t, p.log.String(), "retrying")
	require.Contains(t, p.log.String(), "Error 1045")
}
