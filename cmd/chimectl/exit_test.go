package main

import (
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// With CHIMECTL_RUN_MAIN=1 the test binary is chimectl itself, so that a
// test can see what main writes and how it exits.
func TestMain(m *testing.M) {
	if os.Getenv("CHIMECTL_RUN_MAIN") == "1" {
		os.Args = append([]string{"chimectl"}, strings.Fields(os.Getenv("CHIMECTL_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Injected: two failing invocations of the real main, one against a
// loopback port nothing listens on and one with an unknown command, their
// stderr written one after the other as in a script. Checked: each error is
// its own line ending in a newline (they do not run together), and the exit
// status is 1.
func TestErrorsEndInNewline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	var stderr strings.Builder
	for _, args := range []string{"reminders", "occurrence 12"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "CHIMECTL_RUN_MAIN=1", "CHIMECTL_ARGS="+args,
			"CHIME_API_URL=http://"+addr, "CHIME_API_KEY=chk_x")
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, args)
		require.Equal(t, 1, ee.ExitCode(), args)
	}
	out := stderr.String()
	require.True(t, strings.HasSuffix(out, "\n"), "%q", out)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, 2, "%q", out)
	for _, l := range lines {
		require.True(t, strings.HasPrefix(l, "chimectl: "), "%q", l)
	}
}
