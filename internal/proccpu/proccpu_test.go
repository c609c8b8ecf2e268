package proccpu

import (
	"net"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses; utime 1234, stime 566,
	// starttime 4242.
	line := "3284 (maria (db) d) S 1 3284 3284 0 -1 4194560 9 0 0 0 1234 566 0 0 20 0 38 0 4242 0 0"
	got, start, err := parseStat(line)
	require.NoError(t, err)
	require.InDelta(t, 18.0, got, 1e-9)
	require.EqualValues(t, 4242, start)
	for _, bad := range []string{"", "3284 no-parens S 1", "1 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 ab 5 0 0 20 0 38 0 4242",
		"1 (x) S 1 1 1 0 -1 0 0 0 0 0 1 5 0 0 20 0 38 0", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 1 5 0 0 20 0 38 0 x"} {
		_, _, err := parseStat(bad)
		require.Error(t, err, "%q", bad)
	}
}

// The server is picked by its listening socket on the DSN's port: not a
// connection to that port, not another port, not a listener in another
// state.
func TestListeningInodes(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:33FA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 295516 1 0000000 100 0 0 10 0
   1: 0100007F:3FFB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 294255 1 0000000 100 0 0 10 0
   2: 0100007F:9C40 0100007F:33FA 01 00000000:00000000 00:00000000 00000000     0        0 400001 1 0000000 20 4 30 10 -1
   3: 0100007F:33FA 0100007F:9C41 01 00000000:00000000 00:00000000 00000000     0        0 400002 1 0000000 20 4 30 10 -1
`
	require.Equal(t, []uint64{295516}, listeningInodes(table, 13306))
	require.Equal(t, []uint64{294255}, listeningInodes(table, 16379))
	require.Empty(t, listeningInodes(table, 3306))
	require.Empty(t, listeningInodes("garbage\n\n", 13306))
}

func TestUnixInodes(t *testing.T) {
	table := `Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 295517 /tmp/chime/mysql.sock
0000000000000000: 00000003 00000000 00000000 0001 03 400003 /tmp/chime/mysql.sock
0000000000000000: 00000002 00000000 00010000 0001 01 295518 /tmp/other.sock
`
	require.Equal(t, map[uint64]bool{295517: true}, unixInodes(table, "/tmp/chime/mysql.sock"))
	require.Empty(t, unixInodes(table, "/tmp/none.sock"))
}

func TestSocketInode(t *testing.T) {
	ino, ok := socketInode("socket:[295516]")
	require.True(t, ok)
	require.EqualValues(t, 295516, ino)
	for _, bad := range []string{"pipe:[1]", "socket:[x]", "socket:[12", "/dev/null"} {
		_, ok := socketInode(bad)
		require.False(t, ok, bad)
	}
}

func TestRedisCPU(t *testing.T) {
	got, ok := RedisCPU("# CPU\r\nused_cpu_sys:1.50\r\nused_cpu_user:2.25\r\nused_cpu_sys_children:9\r\n")
	require.True(t, ok)
	require.InDelta(t, 3.75, got, 1e-9)
	_, ok = RedisCPU("# CPU\r\nused_cpu_sys:1.50\r\n")
	require.False(t, ok, "half the figure is no figure")
}

// A real listener of this process on loopback is found by its port, and a
// port nothing listens on or a server on another machine is not measured.
func TestMySQLServerPIDs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	pids, err := ListeningPIDs("u:p@tcp(127.0.0.1:" + strconv.Itoa(port) + ")/db")
	require.NoError(t, err)
	require.Equal(t, []int{os.Getpid()}, pids)

	ln.Close()
	_, err = ListeningPIDs("u:p@tcp(127.0.0.1:" + strconv.Itoa(port) + ")/db")
	require.Error(t, err)
	_, err = ListeningPIDs("u:p@tcp(db.example.com:3306)/db")
	require.ErrorContains(t, err, "not on this machine")
}
