package api_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/store"
)

// serve runs a.Server() on a loopback port until the test ends and returns
// its address.
func serve(t *testing.T, a *api.API) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := a.Server()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		require.ErrorIs(t, <-done, http.ErrServerClosed)
	})
	return ln.Addr().String()
}

func TestServerLimitsDefault(t *testing.T) {
	srv := api.New(api.Config{}, nil, nil, nil, nil).Server()
	require.Equal(t, api.DefaultReadHeaderTimeout, srv.ReadHeaderTimeout)
	require.Equal(t, api.DefaultReadTimeout, srv.ReadTimeout)
	require.Equal(t, api.DefaultWriteTimeout, srv.WriteTimeout)
	require.Equal(t, api.DefaultIdleTimeout, srv.IdleTimeout)
	require.Equal(t, api.DefaultMaxHeaderBytes, srv.MaxHeaderBytes)
}

// The issue: the API server set only ReadHeaderTimeout, and uploads that
// sent their body slowly stayed open past 30 s. Injected: a client on a raw
// connection that sends a PUT's header and 1 byte of its 1,000-byte body,
// then nothing, to a server with a 300ms read timeout. Checked: the server
// answers 408 and closes the connection, well before the client's own
// 10-second deadline (without a read timeout the read would block until
// then and fail the test).
func TestSlowBodyIsCutOff(t *testing.T) {
	b := setup(t)
	addr := serve(t, api.New(api.Config{ReadTimeout: 300 * time.Millisecond}, b.env.DB, b.env.Redis, b.index, b.env.Log))
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(conn, "PUT /v1/reminders/slow HTTP/1.1\r\nHost: chime\r\nAuthorization: Bearer "+b.keyA+
		"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	require.NoError(t, err)

	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "the server answers before the client gives up")
	body, _ := io.ReadAll(res.Body)
	require.Equal(t, http.StatusRequestTimeout, res.StatusCode, "body: %s", body)
	require.Contains(t, string(body), "read timeout")
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server closes the connection: %v", err)
	require.Error(t, err)
	require.Zero(t, b.count(&store.Reminder{}), "nothing is stored")
}

// Injected: a request whose header is over the 64 KiB default. Checked:
// 431, not a read of the whole header.
func TestHeaderOverTheLimitIsRefused(t *testing.T) {
	addr := serve(t, api.New(api.Config{}, nil, nil, nil, nil))
	req, err := http.NewRequest("GET", "http://"+addr+"/livez", nil)
	require.NoError(t, err)
	req.Header.Set("X-Padding", strings.Repeat("p", api.DefaultMaxHeaderBytes+8<<10))
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, res.StatusCode)
	res, err = http.Get("http://" + addr + "/livez")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
}

// Injected: answers of each kind (a success, 401, 404, an operator route's
// 503). Checked: each says Cache-Control: no-store and
// X-Content-Type-Options: nosniff.
func TestAnswersAreNotCachedOrSniffed(t *testing.T) {
	b := setup(t)
	for _, r := range []response{
		b.as("GET", "/v1/reminders", nil),
		b.req("GET", "/v1/reminders", "", nil),
		b.as("GET", "/v1/reminders/none", nil),
		b.as("GET", "/v1/nothing", nil),
		b.req("GET", "/v1/operator/apps", operatorKey, nil),
	} {
		require.Equal(t, "no-store", r.Header.Get("Cache-Control"), "status %d", r.Status)
		require.Equal(t, "nosniff", r.Header.Get("X-Content-Type-Options"), "status %d", r.Status)
	}
}

// Injected: the auth scheme in other letter cases and with extra spaces
// (RFC 9110 makes the scheme case-insensitive). Checked: accepted for an
// app key and for the operator key; other schemes are still refused.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	b := setupOperator(t)
	for _, scheme := range []string{"bearer ", "BEARER ", "beArer   "} {
		requireJSON(t, b.req("GET", "/v1/reminders", "", nil, "Authorization", scheme+b.keyA), http.StatusOK, nil)
		requireJSON(t, b.req("GET", "/v1/operator/apps", "", nil, "Authorization", scheme+operatorKey), http.StatusOK, nil)
	}
	for _, bad := range []string{"Bearer", "bearer", "Bearerx " + b.keyA, "Basic " + b.keyA} {
		requireProblem(t, b.req("GET", "/v1/reminders", "", nil, "Authorization", bad), http.StatusUnauthorized)
	}
}
