package gateway_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Injected: a client that sends its first frame (a ping) in the same
// write as its handshake, so that the frame reaches the gateway with the
// request and net/http has read it by the time the connection is handed
// over. Checked: the gateway keeps those bytes (the connection gets
// buffers of its own then) and answers the ping after the welcome.
func TestFrameSentWithTheHandshakeIsRead(t *testing.T) {
	f := start(t)
	addr := strings.TrimSuffix(strings.TrimPrefix(f.url, "ws://"), "/ws")
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	require.NoError(t, nc.SetDeadline(time.Now().Add(10*time.Second)))

	var out bytes.Buffer
	out.WriteString("GET /ws?token=" + f.token(t, f.key, "eager", time.Hour) + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	// A masked text frame, as clients send (RFC 6455 section 5.3).
	payload, mask := []byte(`{"type":"ping"}`), [4]byte{1, 2, 3, 4}
	out.Write([]byte{0x81, 0x80 | byte(len(payload))})
	out.Write(mask[:])
	for i, b := range payload {
		out.WriteByte(b ^ mask[i%4])
	}
	_, err = nc.Write(out.Bytes())
	require.NoError(t, err)

	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	var frames []string
	for len(frames) < 2 {
		head := make([]byte, 2)
		_, err := io.ReadFull(br, head)
		require.NoError(t, err, "frames so far: %q", frames)
		n := int(head[1] & 0x7f)
		if n == 126 {
			ext := make([]byte, 2)
			_, err := io.ReadFull(br, ext)
			require.NoError(t, err)
			n = int(ext[0])<<8 | int(ext[1])
		}
		body := make([]byte, n)
		_, err = io.ReadFull(br, body)
		require.NoError(t, err)
		frames = append(frames, string(body))
	}
	require.Contains(t, frames[0], `"type":"welcome"`)
	require.JSONEq(t, `{"type":"pong"}`, frames[1])
}
