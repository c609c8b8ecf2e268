package console_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/console"
	"github.com/chime-dev/chime/internal/testenv"
)

// stream opens an occurrence's live stream as c and returns its status
// and, for a 200, its first event and a function that ends it.
func (c *client) stream(id int64) (int, string, func()) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/console/occurrences/%d/stream", c.b.url, id), nil)
	require.NoError(c.t, err)
	res, err := c.http.Do(req)
	require.NoError(c.t, err)
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		cancel()
		return res.StatusCode, "", func() {}
	}
	r := bufio.NewReader(res.Body)
	var ev strings.Builder
	for {
		line, err := r.ReadString('\n')
		require.NoError(c.t, err)
		if line == "\n" {
			break
		}
		ev.WriteString(line)
	}
	go func() { // the next events, until the stream ends
		defer res.Body.Close()
		for {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
		}
	}()
	return res.StatusCode, ev.String(), cancel
}

// Injects: a once reminder planned an hour ahead (its occurrence stays
// scheduled), watched over server-sent events by app A's editor with more
// streams than a session may hold, then by app B's editor, then after A
// signs out, then the coordinator shutting down with a stream open.
// Checks: a stream starts with the live view of the occurrence; the
// session's DefaultLiveStreams streams are served and one more is refused
// 429 (the page then polls) until one of them ends; another app's user gets
// 404; a signed-out session's stream ends with "signed-out"; the
// coordinator's shutdown ends an open stream instead of timing out on it.
func TestLiveStreamsAreBounded(t *testing.T) {
	b := setup(t)
	require.Equal(t, 201, b.call(b.keyA, "PUT", "/v1/reminders/later", "", map[string]any{
		"kind": "once", "title": "Later", "at": time.Now().Add(time.Hour).UTC().Truncate(time.Second)}, nil))
	require.Equal(t, 200, b.call(b.keyA, "POST", "/v1/reminders/later/subscribers", "", map[string]any{
		"subscribers": []map[string]string{{"user_id": "u1", "location": "global"}}}, nil))
	var id int64
	testenv.WaitUntil(t, 20*time.Second, "the occurrence planned", func() bool {
		var occ struct{ Occurrences []struct{ ID int64 } }
		b.call(b.keyA, "GET", "/v1/occurrences?reminder=later", "", nil, &occ)
		if len(occ.Occurrences) > 0 {
			id = occ.Occurrences[0].ID
		}
		return id != 0
	})
	a := b.client(t)
	require.Equal(t, http.StatusSeeOther, a.signIn("editor@a.example", password).StatusCode)
	var ends []func()
	for range console.DefaultLiveStreams {
		status, ev, end := a.stream(id)
		require.Equal(t, http.StatusOK, status)
		require.True(t, strings.HasPrefix(ev, "event: live\n"), ev)
		require.Contains(t, ev, `id="state">scheduled<`)
		ends = append(ends, end)
	}
	status, _, _ := a.stream(id)
	require.Equal(t, http.StatusTooManyRequests, status, "one stream more than a session may hold")
	ends[0]()
	testenv.WaitUntil(t, 10*time.Second, "a stream ended frees its place", func() bool {
		status, _, end := a.stream(id)
		if status == http.StatusOK {
			ends[0] = end
		}
		return status == http.StatusOK
	})

	other := b.client(t)
	require.Equal(t, http.StatusSeeOther, other.signIn("editor@b.example", password).StatusCode)
	status, _, _ = other.stream(id)
	require.Equal(t, http.StatusNotFound, status)

	for _, end := range ends {
		end()
	}
	// A stream of a session that signs out ends.
	testenv.WaitUntil(t, 10*time.Second, "the ended streams freed", func() bool {
		status, _, end := a.stream(id)
		end()
		return status == http.StatusOK
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/console/occurrences/%d/stream", b.url, id), nil)
	require.NoError(t, err)
	res, err := a.http.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	_, page := a.do("GET", "/console/reminders", nil)
	m := csrfField.FindStringSubmatch(page)
	require.NotNil(t, m)
	out, _ := a.do("POST", "/console/logout", url.Values{"csrf": {m[1]}})
	require.Equal(t, http.StatusSeeOther, out.StatusCode)
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var last string
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "event: ") {
			last = sc.Text()
		}
	}
	require.Equal(t, "event: signed-out", last, "the stream ends once the session does")

	// A server shutting down ends its streams rather than waiting for them.
	require.Equal(t, http.StatusSeeOther, other.signIn("editor@a.example", password).StatusCode)
	status, _, end := other.stream(id)
	require.Equal(t, http.StatusOK, status)
	defer end()
	require.NoError(t, b.stop(), "the coordinator shut down within its timeout, an open stream notwithstanding")
}
