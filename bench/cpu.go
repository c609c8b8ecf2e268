package bench

import (
	"context"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/chime-dev/chime/internal/proccpu"
)

// CPU is counted for what the run uses and nothing else: this process and
// the worker processes it started, the Redis server it talks to (INFO cpu,
// from the server itself), and the MySQL/MariaDB server that listens on
// the address of MYSQL_DSN (the process owning that listening socket, read
// from /proc/net and /proc/PID/fd). A figure that cannot be measured (the
// server is on another machine, its process cannot be read, it restarted
// during the run: another Redis run_id, another start time of the MariaDB
// process; or the difference came out negative) is nil: printed as "n/a",
// and its keys are left out of the JSON line, never a guess.

// cpuMeter reads the CPU seconds of each consumer at the start and at the
// end of a run.
type cpuMeter struct {
	rdb      redis.UniversalClient
	pids     []int
	mysqlPID int // 0: not found
	start    cpuReading
}

// cpuTimes is CPU seconds by consumer; nil is "could not be measured".
type cpuTimes struct {
	Engine *float64 `json:"engine,omitempty"` // this process and worker processes
	Redis  *float64 `json:"redis,omitempty"`
	MySQL  *float64 `json:"mysql,omitempty"`
}

// sum returns the total, or nil unless every part was measured.
func (c cpuTimes) sum() *float64 {
	if c.Engine == nil || c.Redis == nil || c.MySQL == nil {
		return nil
	}
	s := *c.Engine + *c.Redis + *c.MySQL
	return &s
}

// cpuReading is one reading; ok false is a part that could not be read.
// redisRun and mysqlStart tell a server restarted between two readings.
type cpuReading struct {
	engine, redis, mysql       float64
	engineOK, redisOK, mysqlOK bool
	redisRun                   string
	mysqlStart                 uint64
}

func newCPUMeter(ctx context.Context, rdb redis.UniversalClient, mysqlDSN string, extra ...int) *cpuMeter {
	m := &cpuMeter{rdb: rdb, pids: extra}
	if pids, err := proccpu.ListeningPIDs(mysqlDSN); err == nil && len(pids) == 1 {
		m.mysqlPID = pids[0]
	}
	m.start = m.read(ctx)
	return m
}

// Since returns the CPU seconds used since the meter was made.
func (m *cpuMeter) Since(ctx context.Context) cpuTimes { return m.delta(m.read(ctx)) }

// delta is the CPU used from the start to the reading now.
func (m *cpuMeter) delta(now cpuReading) cpuTimes {
	delta := func(a, b float64, okA, okB bool) *float64 {
		if !okA || !okB || b < a {
			return nil
		}
		d := b - a
		return &d
	}
	sameRedis := m.start.redisRun == now.redisRun
	sameMySQL := m.start.mysqlStart == now.mysqlStart
	return cpuTimes{
		Engine: delta(m.start.engine, now.engine, m.start.engineOK, now.engineOK),
		Redis:  delta(m.start.redis, now.redis, m.start.redisOK, now.redisOK && sameRedis),
		MySQL:  delta(m.start.mysql, now.mysql, m.start.mysqlOK, now.mysqlOK && sameMySQL),
	}
}

func (m *cpuMeter) read(ctx context.Context) cpuReading {
	var r cpuReading
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		r.engine, r.engineOK = tv(ru.Utime)+tv(ru.Stime), true
		for _, pid := range m.pids {
			s, _, err := proccpu.Process(pid)
			r.engine += s
			r.engineOK = r.engineOK && err == nil
		}
	}
	// A Redis busy with a long command can miss the client's read
	// timeout: a few tries before the figure is given up as n/a.
	for try := 0; try < 3 && !r.redisOK && ctx.Err() == nil; try++ {
		if info, err := m.rdb.Info(ctx, "server", "cpu").Result(); err == nil {
			r.redis, r.redisOK = proccpu.RedisCPU(info)
			r.redisRun = proccpu.InfoField(info, "run_id")
			r.redisOK = r.redisOK && r.redisRun != ""
		}
	}
	if m.mysqlPID != 0 {
		s, start, err := proccpu.Process(m.mysqlPID)
		r.mysql, r.mysqlStart, r.mysqlOK = s, start, err == nil
	}
	return r
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
