package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/chime-dev/chime"
	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/clock"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/sender/webhook/sink"
)

// bundle is a running Chime on real Redis and MariaDB: coordinators and
// workers in this process, a webhook sink on loopback, and an API client.
type bundle struct {
	t      *testing.T
	env    *testenv.Env
	cfg    chime.Config
	sink   *sink.Sink
	hook   string // the sink's URL
	apiURL string
	key    string
	ctx    context.Context
	group  *errgroup.Group
}

// setup starts the sink and returns a bundle with no coordinator or worker
// running yet.
func setup(t *testing.T) *bundle {
	t.Helper()
	env := testenv.New(t)
	b := &bundle{t: t, env: env, sink: sink.New()}
	srv := httptest.NewServer(b.sink)
	t.Cleanup(srv.Close)
	b.hook = srv.URL + "/hook"
	b.cfg = chime.Config{
		RedisURL: env.RedisURL, MySQLDSN: env.DSN, Prefix: env.Prefix, Queue: env.Queue,
		LeaderTTL: 2 * time.Second, PlanInterval: 5 * time.Second, Horizon: 26 * time.Hour,
		PrepareLead: time.Second, AckTimeout: 2 * time.Second, QueueTimeout: 10 * time.Second,
		Concurrency: 8, ChunkSize: 50, LeaseTTL: 2 * time.Second, Sender: "webhook", WebhookURL: b.hook,
		WebhookTimeout: 5 * time.Second, ShutdownTimeout: 5 * time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.group, b.ctx = errgroup.WithContext(ctx)
	t.Cleanup(func() {
		cancel()
		require.NoError(t, b.group.Wait())
	})
	_, key, err := api.CreateApp(ctx, env.DB, "test")
	require.NoError(t, err)
	b.key = key
	return b
}

// startCoordinator runs a coordinator named id in this process until the
// test ends or stop is called; stop returns once it has stopped.
func (b *bundle) startCoordinator(id string) (stop func()) {
	b.t.Helper()
	cfg := b.cfg
	cfg.ReplicaID = id
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b.t, err)
	rdb, err := chime.OpenRedis(b.ctx, cfg.RedisURL)
	require.NoError(b.t, err)
	b.t.Cleanup(func() { rdb.Close() })
	c := chime.NewCoordinator(cfg, b.env.DB, rdb, clock.Real{}, b.env.Log, ln)
	if b.apiURL == "" {
		b.apiURL = "http://" + ln.Addr().String()
	}
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error, 1)
	b.group.Go(func() error {
		err := c.Run(ctx)
		done <- err
		return err
	})
	return func() {
		cancel()
		<-done //nolint:errcheck // waits for the process to stop; its end was reported
	}
}

// startWorker runs a worker named id in this process.
func (b *bundle) startWorker(id string) {
	b.t.Helper()
	cfg := b.cfg
	cfg.ReplicaID = id
	s, err := chime.NewSender(b.ctx, cfg, b.env.DB, b.env.Redis, b.env.Log)
	require.NoError(b.t, err)
	rdb, err := chime.OpenRedis(b.ctx, cfg.RedisURL)
	require.NoError(b.t, err)
	w := chime.NewWorker(cfg, b.env.DB, rdb, s, clock.Real{}, b.env.Log)
	// The client is closed after the worker stops: asynq's subscriber
	// must not see its connection closed under it.
	b.group.Go(func() error { defer rdb.Close(); return w.Run(b.ctx) })
}

// call sends one API request and decodes the answer into out.
func (b *bundle) call(method, path string, in, out any) int {
	b.t.Helper()
	return b.callWith(method, path, in, nil, out)
}

// callWith is call with extra request headers.
func (b *bundle) callWith(method, path string, in any, h http.Header, out any) int {
	b.t.Helper()
	var body string
	if in != nil {
		raw, err := json.Marshal(in)
		require.NoError(b.t, err)
		body = string(raw)
	}
	return b.send(method, path, "application/json", body, h, out)
}

// callRaw sends body as contentType.
func (b *bundle) callRaw(method, path, contentType, body string, out any) int {
	b.t.Helper()
	return b.send(method, path, contentType, body, nil, out)
}

func (b *bundle) send(method, path, contentType, body string, h http.Header, out any) int {
	b.t.Helper()
	req, err := http.NewRequest(method, b.apiURL+path, strings.NewReader(body))
	require.NoError(b.t, err)
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+b.key)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	if out != nil && resp.StatusCode < 300 {
		require.NoError(b.t, json.Unmarshal(raw, out), string(raw))
	}
	if resp.StatusCode >= 300 {
		b.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode
}

type place struct{ name, zone string }

// putReminder defines reminder key at local time at (in each zone) for places.
func (b *bundle) putReminder(key string, groups int, at time.Time, places []place) {
	b.t.Helper()
	var times []api.ReminderTime
	for _, p := range places {
		loc, err := time.LoadLocation(p.zone)
		require.NoError(b.t, err)
		times = append(times, api.ReminderTime{Location: p.name, Zone: p.zone, LocalTime: at.In(loc).Format("15:04:05")})
	}
	code := b.call(http.MethodPut, "/v1/reminders/"+key, map[string]any{
		"title": "Test " + key, "body": "body", "groups": groups, "valid_for": "5m", "times": times,
	}, nil)
	require.Contains(b.t, []int{200, 201}, code)
}

// register subscribes users first..first+n-1 round-robin over places and
// returns how many went to each place.
func (b *bundle) register(key string, first, n int, places []place) map[string]int {
	b.t.Helper()
	per := map[string]int{}
	batch := make([]map[string]string, 0, 10000)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		var out struct{ Registered int }
		require.Equal(b.t, 200, b.call(http.MethodPost, "/v1/reminders/"+key+"/subscribers", map[string]any{"subscribers": batch}, &out))
		require.Equal(b.t, len(batch), out.Registered)
		batch = batch[:0]
	}
	for i := range n {
		p := places[i%len(places)]
		per[p.name]++
		batch = append(batch, map[string]string{"user_id": strconv.Itoa(first + i), "location": p.name})
		if len(batch) == cap(batch) {
			flush()
		}
	}
	flush()
	return per
}

// occurrences returns the reminder's occurrences as the API reports them.
func (b *bundle) occurrences(key string) []api.Occurrence {
	b.t.Helper()
	var out struct{ Occurrences []api.Occurrence }
	require.Equal(b.t, 200, b.call(http.MethodGet, "/v1/occurrences?reminder="+key, nil, &out))
	return out.Occurrences
}

// waitDone waits until want occurrences of key are done.
func (b *bundle) waitDone(key string, want int, timeout time.Duration) []api.Occurrence {
	b.t.Helper()
	var occ []api.Occurrence
	testenv.WaitUntil(b.t, timeout, fmt.Sprintf("%d occurrences of %s done", want, key), func() bool {
		occ = b.occurrences(key)
		done := 0
		for _, o := range occ {
			if o.State == "done" {
				done++
			}
		}
		return done >= want
	})
	return occ
}

// nextSecond returns an instant d from now, on a whole second (local times
// have second resolution).
func nextSecond(d time.Duration) time.Time {
	return time.Now().Add(d).Truncate(time.Second).Add(time.Second)
}

// at returns the occurrences that fire at instant.
// fireOnce subscribes users (IDs from base) to reminder key over places,
// fires it two seconds ahead, waits for every place's occurrence, and checks
// that each user was delivered exactly once and each occurrence recorded
// its place's users. It returns the fire's occurrences.
func (b *bundle) fireOnce(key string, groups, base, users int, places []place) []api.Occurrence {
	b.t.Helper()
	t := b.t
	b.putReminder(key, groups, time.Now().Add(2*time.Hour), places)
	per := b.register(key, base, users, places)
	fireAt := nextSecond(2 * time.Second)
	b.putReminder(key, groups, fireAt, places)
	occ := at(b.waitDone(key, len(places), time.Minute), fireAt)
	require.Len(t, occ, len(places))
	st := b.sink.Stats()
	require.Equal(t, users, st.Users, "distinct users delivered")
	require.Zero(t, st.Duplicates, "duplicate deliveries")
	for _, o := range occ {
		require.EqualValues(t, per[o.Location], o.Delivered, o.Location)
	}
	return occ
}

func at(occ []api.Occurrence, instant time.Time) []api.Occurrence {
	var out []api.Occurrence
	for _, o := range occ {
		if o.FireAt.Equal(instant) {
			out = append(out, o)
		}
	}
	return out
}
