package main

import (
	"syscall"

	"github.com/chime-dev/chime/internal/proccpu"
)

// The run's processes share this machine's cores, so a fire's latency is
// bounded by the CPU all of them spend per user: the load reads each
// process's CPU time from just before the fire to the last ack recorded.
// The engine is this process (coordinator, worker and API run in it; its
// own reading loop polls MySQL every 20 ms), the gateways and the client
// processes are the children it started, and MySQL is the server listening
// on MYSQL_DSN's address; Redis's comes from INFO cpu (redisStats).

// procSet is the run's processes.
type procSet struct {
	gateways, clients []int
	mysql             int // 0: not found, not measured
}

// procTimes is one reading, in CPU seconds; ok is false if a process could
// not be read, mysqlOK if MySQL's could not.
type procTimes struct {
	engine, clients, mysql float64
	gateways               []float64
	mysqlStart             uint64
	ok, mysqlOK            bool
}

// mysqlPID finds the MySQL server listening on dsn's address, or 0. It
// reads every open file of every process: it is called before the run
// opens its connections, not between the fire and the acks.
func mysqlPID(dsn string) int {
	if pids, err := proccpu.ListeningPIDs(dsn); err == nil && len(pids) == 1 {
		return pids[0]
	}
	return 0
}

func (s procSet) read() procTimes {
	t := procTimes{ok: true, gateways: make([]float64, len(s.gateways))}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.ok = false
	}
	t.engine = seconds(ru.Utime) + seconds(ru.Stime)
	for i, pid := range s.gateways {
		c, _, err := proccpu.Process(pid)
		t.gateways[i], t.ok = c, t.ok && err == nil
	}
	for _, pid := range s.clients {
		c, _, err := proccpu.Process(pid)
		t.clients, t.ok = t.clients+c, t.ok && err == nil
	}
	if s.mysql != 0 {
		c, start, err := proccpu.Process(s.mysql)
		t.mysql, t.mysqlStart, t.mysqlOK = c, start, err == nil
	}
	return t
}

func seconds(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// perUser sets r's CPU figures from the readings a and b, taken wall
// seconds apart around the fire, and redisSeconds, Redis's CPU between
// them. A part that could not be read leaves its keys out, and so do the
// sums that need it.
func (r *result) perUser(a, b procTimes, redisSeconds, wall float64) {
	if !a.ok || !b.ok || wall <= 0 {
		return
	}
	n := float64(r.Clients + r.Offline)
	us := func(s float64) *float64 { v := s * 1e6 / n; return &v }
	var gws float64
	for i := range a.gateways {
		d := b.gateways[i] - a.gateways[i]
		gws += d
		r.PerGateway[i].CPUUsPerUser = d * 1e6 / float64(r.PerGateway[i].Connections)
	}
	engine, clients := b.engine-a.engine, b.clients-a.clients
	r.EngineCPUUsPerUser, r.GatewayCPUUsPerUser, r.ClientCPUUsPerUser = us(engine), us(gws), us(clients)
	if !a.mysqlOK || !b.mysqlOK || a.mysqlStart != b.mysqlStart {
		return
	}
	mysql := b.mysql - a.mysql
	r.MySQLCPUUsPerUser = us(mysql)
	r.ServerCPUUsPerUser = us(engine + gws + redisSeconds + mysql)
	busy := (engine + gws + clients + redisSeconds + mysql) / wall
	r.CoresBusy = &busy
}
