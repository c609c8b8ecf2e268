package bench

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/internal/proccpu"
)

// The meter reads this process's own start time and a real Redis's run_id,
// so that a restart between its readings is told from a run's CPU.
func TestCPUMeterReadsRestartMarks(t *testing.T) {
	_, start, err := proccpu.Process(os.Getpid())
	require.NoError(t, err)
	require.NotZero(t, start)
	url := os.Getenv("REDIS_URL")
	if url == "" {
		t.Skip("REDIS_URL not set")
	}
	opt, err := redis.ParseURL(url)
	require.NoError(t, err)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	m := &cpuMeter{rdb: rdb, mysqlPID: os.Getpid()}
	r := m.read(context.Background())
	require.True(t, r.redisOK)
	require.Len(t, r.redisRun, 40)
	require.True(t, r.mysqlOK)
	require.Equal(t, start, r.mysqlStart)
}

// Unmeasured parts make the sum unmeasured, and a reading that went
// backwards (a restarted server) is no figure, never a negative one.
func TestCPUTimesNeverGuess(t *testing.T) {
	one := 1.0
	require.Nil(t, cpuTimes{Engine: &one, Redis: &one}.sum())
	require.InDelta(t, 3.0, *cpuTimes{Engine: &one, Redis: &one, MySQL: &one}.sum(), 1e-9)

	m := &cpuMeter{start: cpuReading{engine: 5, redis: 5, mysql: 100, engineOK: true, redisOK: true, mysqlOK: true}}
	now := cpuReading{engine: 6, redis: 7, mysql: 40, engineOK: true, redisOK: true, mysqlOK: true}
	d := m.delta(now)
	require.InDelta(t, 1.0, *d.Engine, 1e-9)
	require.InDelta(t, 2.0, *d.Redis, 1e-9)
	require.Nil(t, d.MySQL)

	// A server restarted during the run whose counter came out higher
	// anyway (another Redis run_id, another MariaDB process on the port's
	// PID) is no figure either.
	m.start.redisRun, m.start.mysqlStart = "a1", 100
	later := cpuReading{engine: 6, redis: 7, mysql: 140, engineOK: true, redisOK: true, mysqlOK: true, redisRun: "b2", mysqlStart: 200}
	r2 := m.delta(later)
	require.Nil(t, r2.Redis)
	require.Nil(t, r2.MySQL)
	later.redisRun, later.mysqlStart = "a1", 100
	r2 = m.delta(later)
	require.InDelta(t, 2.0, *r2.Redis, 1e-9)
	require.InDelta(t, 40.0, *r2.MySQL, 1e-9)
	r := Result{Users: 10}
	c := NewCounter()
	c.record(1, 10)
	finish(&r, c, time.Now(), d, nil)
	require.Nil(t, r.CPUSecondsPerMilln)
	require.Contains(t, r.row(), "n/a")
	require.NotContains(t, Report{Results: []Result{{System: "chime", Sink: "no-op", CPU: d}}}.JSON(), "cpu_s_per_million")
}
