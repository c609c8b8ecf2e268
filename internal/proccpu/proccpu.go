// Package proccpu reads the CPU time of processes on this machine, so that
// a benchmark counts what the servers it uses spent and nothing else: a
// process's own utime+stime from /proc, a Redis server's from INFO cpu,
// and the process behind a listening address (a MySQL DSN's port or unix
// socket) from /proc/net and /proc/PID/fd.
package proccpu

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	mysqldrv "github.com/go-sql-driver/mysql"
)

// RedisCPU sums used_cpu_sys and used_cpu_user of an INFO cpu answer.
func RedisCPU(info string) (float64, bool) {
	sum, n := 0.0, 0
	for line := range strings.SplitSeq(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, false
			}
			sum += f
			n++
		}
	}
	return sum, n == 2
}

// InfoField returns the value of key in an INFO answer, or "".
func InfoField(info, key string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
			return v
		}
	}
	return ""
}

// Process reads utime+stime of pid from /proc, in seconds, and its start
// time.
func Process(pid int) (float64, uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseStat(string(b))
}

// parseStat returns utime+stime of a /proc/PID/stat line, in seconds, and
// the process's start time (in clock ticks since boot: another process
// given the same PID has another). The command name (field 2) is in
// parentheses and may hold spaces and parentheses itself, so fields are
// counted from the last ')'.
func parseStat(s string) (float64, uint64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return 0, 0, errors.New("stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15,
	// starttime field 22.
	if len(f) < 20 {
		return 0, 0, errors.New("stat: too few fields")
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	k, err2 := strconv.ParseUint(f[12], 10, 64)
	start, err3 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, errors.New("stat: bad utime, stime or starttime")
	}
	return float64(u+k) / 100, start, nil // USER_HZ is 100 on Linux
}

// ListeningPIDs returns the processes listening on the address of dsn:
// a TCP port on this machine, or a unix socket path.
func ListeningPIDs(dsn string) ([]int, error) {
	cfg, err := mysqldrv.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	var inodes map[uint64]bool
	switch cfg.Net {
	case "tcp", "tcp4", "tcp6":
		host, p, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			return nil, err
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("%s is not on this machine", cfg.Addr)
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			return nil, err
		}
		inodes = map[uint64]bool{}
		for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for _, ino := range listeningInodes(string(b), port) {
				inodes[ino] = true
			}
		}
	case "unix":
		b, err := os.ReadFile("/proc/net/unix")
		if err != nil {
			return nil, err
		}
		inodes = unixInodes(string(b), cfg.Addr)
	default:
		return nil, fmt.Errorf("network %q", cfg.Net)
	}
	if len(inodes) == 0 {
		return nil, fmt.Errorf("nothing listens on %s", cfg.Addr)
	}
	return socketOwners(inodes), nil
}

// listeningInodes returns the inodes of the sockets in LISTEN state (0A)
// on port in a /proc/net/tcp or tcp6 table.
func listeningInodes(table string, port int) []uint64 {
	var out []uint64
	for line := range strings.SplitSeq(table, "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != "0A" {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		if p, err := strconv.ParseUint(hexPort, 16, 16); err != nil || int(p) != port {
			continue
		}
		if ino, err := strconv.ParseUint(f[9], 10, 64); err == nil && ino != 0 {
			out = append(out, ino)
		}
	}
	return out
}

// unixInodes returns the inodes of the listening unix sockets bound to
// path in /proc/net/unix.
func unixInodes(table, path string) map[uint64]bool {
	out := map[uint64]bool{}
	for line := range strings.SplitSeq(table, "\n") {
		f := strings.Fields(line)
		// Num RefCount Protocol Flags Type St Inode Path; flags 00010000 is
		// __SO_ACCEPTCON, a listening socket.
		if len(f) < 8 || f[7] != path || f[3] != "00010000" {
			continue
		}
		if ino, err := strconv.ParseUint(f[6], 10, 64); err == nil {
			out[ino] = true
		}
	}
	return out
}

// socketOwners returns the processes holding one of the socket inodes.
func socketOwners(inodes map[uint64]bool) []int {
	var out []int
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	seen := map[int]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fd)
		if err != nil {
			continue
		}
		ino, ok := socketInode(link)
		if !ok || !inodes[ino] {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(fd))))
		if err == nil && !seen[pid] {
			seen[pid] = true
			out = append(out, pid)
		}
	}
	return out
}

// socketInode reads the inode of a "socket:[123]" fd link.
func socketInode(link string) (uint64, bool) {
	s, ok := strings.CutPrefix(link, "socket:[")
	if !ok || !strings.HasSuffix(s, "]") {
		return 0, false
	}
	ino, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64)
	return ino, err == nil
}
