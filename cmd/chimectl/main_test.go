package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/grouping"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/store"
)

const samplePath = "../../testdata/timetable/prayer-sample.csv"

// now is the API's clock in these tests.
var now = time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)

// server is a real API on loopback over a database of the test's own, with
// one app whose key the commands use.
type server struct {
	t      *testing.T
	env    *testenv.Env
	url    string
	key    string
	app    store.App
	client *api.Client
}

func start(t *testing.T) *server {
	t.Helper()
	env := testenv.New(t)
	index := grouping.NewIndex(env.Redis, env.DB, env.Prefix)
	a := api.New(api.Config{ChangesChannel: env.Prefix + "changes", Now: func() time.Time { return now }}, env.DB, env.Redis, index, env.Log)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	app, key, err := api.CreateApp(context.Background(), env.DB, "pm")
	require.NoError(t, err)
	return &server{t: t, env: env, url: srv.URL, key: key, app: app,
		client: &api.Client{Base: srv.URL, Key: key, HTTP: srv.Client()}}
}

// put creates a reminder through the API.
func (s *server) put(key string, body map[string]any) {
	s.t.Helper()
	require.NoError(s.t, s.client.Do(context.Background(), http.MethodPut, "/v1/reminders/"+key, body, nil))
}

func (s *server) putPrayers() {
	s.t.Helper()
	for _, p := range []string{"fajr", "dhuhr", "asr", "maghrib", "isha"} {
		s.put(p, map[string]any{"kind": "timetable", "title": p})
	}
}

// env returns a getenv with the server's address and key.
func (s *server) getenv(name string) string {
	switch name {
	case "CHIME_API_URL":
		return s.url
	case "CHIME_API_KEY":
		return s.key
	}
	return ""
}

// run runs chimectl with args against s and returns its output.
func (s *server) run(args ...string) (string, error) {
	s.t.Helper()
	return runWith(s.getenv, "", args...)
}

func runWith(getenv func(string) string, stdin string, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, getenv, strings.NewReader(stdin), &out, &errOut)
	return out.String(), err
}

// mustRun runs a command that must succeed.
func (s *server) mustRun(args ...string) string {
	s.t.Helper()
	out, err := s.run(args...)
	require.NoError(s.t, err, "chimectl %s", strings.Join(args, " "))
	return out
}

// rows splits a table into its lines' fields, without the header.
func rows(t *testing.T, out, header string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	require.Equal(t, header, strings.Join(strings.Fields(lines[0]), " "), "output:\n%s", out)
	var res [][]string
	for _, l := range lines[1:] {
		res = append(res, strings.Fields(l))
	}
	return res
}

// requireOneLine checks that err is a one-line message starting with prefix
// and mentioning every one of mention.
func requireOneLine(t *testing.T, err error, prefix string, mention ...string) {
	t.Helper()
	require.Error(t, err)
	msg := err.Error()
	require.NotContains(t, msg, "\n", "one line: %q", msg)
	require.True(t, strings.HasPrefix(msg, prefix), "%q does not start with %q", msg, prefix)
	for _, m := range mention {
		require.Contains(t, msg, m)
	}
}

func TestReminders(t *testing.T) {
	s := start(t)
	s.put("water", map[string]any{"title": "Drink water", "valid_for": "30m", "grace": "10m",
		"times": []api.ReminderTime{{Location: "paris", Zone: "Europe/Paris", LocalTime: "09:00"}, {Location: "tokyo", Zone: "Asia/Tokyo", LocalTime: "09:00"}}})
	s.put("fajr", map[string]any{"kind": "timetable", "title": "Fajr", "paused": true})

	got := rows(t, s.mustRun("reminders"), "KEY KIND PAUSED TIMES LOCATIONS VALID FOR GRACE TITLE")
	require.Equal(t, [][]string{
		{"fajr", "timetable", "true", "0", "0", "15m0s", "15m0s", "Fajr"},
		{"water", "daily", "false", "2", "2", "30m0s", "10m0s", "Drink", "water"},
	}, got)

	// The address and key may come as flags instead of the environment.
	out, err := runWith(func(string) string { return "" }, "", "-api", s.url+"/", "-key", s.key, "reminders")
	require.NoError(t, err)
	require.Len(t, rows(t, out, "KEY KIND PAUSED TIMES LOCATIONS VALID FOR GRACE TITLE"), 2)
}

func TestTimetableImportAndList(t *testing.T) {
	s := start(t)
	s.putPrayers()

	out := s.mustRun("timetable", "import", samplePath)
	require.True(t, strings.HasPrefix(out, "imported 70 rows for 5 reminder(s), 3 new location(s), in "), "output: %q", out)
	var n int64
	require.NoError(t, s.env.DB.Model(&store.DatedTime{}).Count(&n).Error)
	require.Equal(t, int64(70), n)

	got := rows(t, s.mustRun("timetable", "list", "fajr", "-location", "london", "-from", "2026-03-28", "-to", "2026-03-30"),
		"DATE LOCAL TIME LOCATION ZONE FIRE AT (UTC)")
	require.Equal(t, [][]string{
		{"2026-03-28", "04:10:00", "london", "Europe/London", "2026-03-28T04:10:00Z"},
		{"2026-03-29", "05:08:00", "london", "Europe/London", "2026-03-29T04:08:00Z"},
		{"2026-03-30", "05:05:00", "london", "Europe/London", "2026-03-30T04:05:00Z"},
	}, got)
	require.Len(t, rows(t, s.mustRun("timetable", "list", "isha"), "DATE LOCAL TIME LOCATION ZONE FIRE AT (UTC)"), 14)

	// "-" reads the file from stdin; a row replaces the stored one.
	out, err := runWith(s.getenv, "location,date,name,local_time\nlondon,2026-03-29,fajr,05:09\n", "timetable", "import", "-")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(out, "imported 1 rows for 1 reminder(s), 0 new location(s)"), "output: %q", out)
	got = rows(t, s.mustRun("timetable", "list", "-from", "2026-03-29", "-to", "2026-03-29", "fajr", "-location", "london"),
		"DATE LOCAL TIME LOCATION ZONE FIRE AT (UTC)")
	require.Equal(t, [][]string{{"2026-03-29", "05:09:00", "london", "Europe/London", "2026-03-29T04:09:00Z"}}, got)
}

func TestUpcoming(t *testing.T) {
	s := start(t)
	s.putPrayers()
	s.mustRun("timetable", "import", samplePath)

	got := rows(t, s.mustRun("upcoming", "fajr", "-hours", "48"), "FIRE AT (UTC) LOCAL LOCATION ZONE EVENT")
	require.Equal(t, [][]string{
		{"2026-03-28T21:38:00Z", "2026-03-29T04:38:00+07:00", "jakarta", "Asia/Jakarta"},
		{"2026-03-29T01:30:00Z", "2026-03-29T04:30:00+03:00", "riyadh", "Asia/Riyadh"},
		{"2026-03-29T04:08:00Z", "2026-03-29T05:08:00+01:00", "london", "Europe/London"},
		{"2026-03-29T21:38:00Z", "2026-03-30T04:38:00+07:00", "jakarta", "Asia/Jakarta"},
		{"2026-03-30T01:29:00Z", "2026-03-30T04:29:00+03:00", "riyadh", "Asia/Riyadh"},
		{"2026-03-30T04:05:00Z", "2026-03-30T05:05:00+01:00", "london", "Europe/London"},
	}, got)
	// The default is 24 hours.
	require.Len(t, rows(t, s.mustRun("upcoming", "fajr"), "FIRE AT (UTC) LOCAL LOCATION ZONE EVENT"), 3)

	// A topic's upcoming fires name their event.
	s.put("flash", map[string]any{"kind": "topic", "title": "Flash", "schema": map[string]any{"type": "object"}})
	out := s.mustRun("event", "post", "flash", "-at", "2026-03-28T13:00:00Z")
	id := strings.Fields(out)[1]
	got = rows(t, s.mustRun("upcoming", "flash"), "FIRE AT (UTC) LOCAL LOCATION ZONE EVENT")
	require.Equal(t, [][]string{{"2026-03-28T13:00:00Z", "2026-03-28T13:00:00Z", "global", "UTC", id}}, got)
}

func TestOccurrences(t *testing.T) {
	s := start(t)
	s.putPrayers()
	s.mustRun("timetable", "import", samplePath)
	var rem store.Reminder
	require.NoError(t, s.env.DB.Where("app_id = ? AND `key` = ?", s.app.ID, "fajr").First(&rem).Error)
	var london store.Location
	require.NoError(t, s.env.DB.Where("app_id = ? AND name = ?", s.app.ID, "london").First(&london).Error)

	fireAt := time.Date(2026, 3, 28, 4, 10, 0, 0, time.UTC)
	firedAt := fireAt.Add(8 * time.Second)
	doneAt := fireAt.Add(time.Minute)
	done := store.Occurrence{ReminderID: rem.ID, LocationID: london.ID, FireAt: fireAt, ExpiresAt: fireAt.Add(15 * time.Minute),
		State: store.OccDone, GroupsTotal: 256, GroupsDone: 256, Delivered: 1200, Failed: 3, Expired: 1, FiredAt: &firedAt, DoneAt: &doneAt}
	next := fireAt.Add(24*time.Hour - 2*time.Minute)
	nextFired := next.Add(20 * time.Millisecond)
	firing := store.Occurrence{ReminderID: rem.ID, LocationID: london.ID, FireAt: next, ExpiresAt: next.Add(15 * time.Minute),
		State: store.OccFiring, GroupsTotal: 256, GroupsDone: 128, Delivered: 600, FiredAt: &nextFired}
	require.NoError(t, s.env.DB.Create(&done).Error)
	require.NoError(t, s.env.DB.Create(&firing).Error)

	got := rows(t, s.mustRun("occurrences", "fajr"), "ID FIRE AT (UTC) LOCATION STATE GROUPS DELIVERED FAILED EXPIRED LATE")
	require.Equal(t, [][]string{
		{strconv.FormatInt(firing.ID, 10), "2026-03-29T04:08:00Z", "london", "firing", "128/256", "600", "0", "0", "20ms"},
		{strconv.FormatInt(done.ID, 10), "2026-03-28T04:10:00Z", "london", "done", "256/256", "1200", "3", "1", "8s"},
	}, got)
	got = rows(t, s.mustRun("occurrences", "fajr", "-state", "done", "-limit", "5"), "ID FIRE AT (UTC) LOCATION STATE GROUPS DELIVERED FAILED EXPIRED LATE")
	require.Len(t, got, 1)
	require.Equal(t, "done", got[0][3])

	out := s.mustRun("occurrence", strconv.FormatInt(done.ID, 10))
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	require.Equal(t, []string{
		fmt.Sprintf("occurrence %d", done.ID),
		"reminder fajr",
		"location london (Europe/London)",
		"fire at 2026-03-28T04:10:00Z",
		"state done",
		"groups 256 of 256 done (100%)",
		"users 1200 delivered, 3 failed, 1 expired",
		"fired 8s after its instant (late: true)",
		"done at 2026-03-28T04:11:00Z",
	}, lines)
	require.Contains(t, s.mustRun("occurrence", strconv.FormatInt(firing.ID, 10)), "128 of 256 done (50%)")

	_, err := s.run("occurrence", "999999")
	requireOneLine(t, err, "404 Not Found: ", "no occurrence 999999")
	_, err = s.run("occurrences", "nope")
	requireOneLine(t, err, "404 Not Found: ", `no reminder "nope"`)
}

func TestEventPostAndShow(t *testing.T) {
	s := start(t)
	s.put("flash", map[string]any{"kind": "topic", "title": "Flash sale", "schema": map[string]any{
		"type": "object", "required": []string{"product"},
		"properties": map[string]any{"product": map[string]any{"type": "string"}, "discount": map[string]any{"type": "integer"}},
	}})

	out := s.mustRun("event", "post", "flash", "-data", `{"product":"Hats","discount":20}`, "-key", "order-1")
	f := strings.Fields(out)
	require.Len(t, f, 7, "output: %q", out)
	id := f[1]
	require.Equal(t, fmt.Sprintf("event %s on flash fires at 2026-03-28T12:00:00Z\n", id), out)
	// A retry with the same key is the same event.
	require.Equal(t, out, s.mustRun("event", "post", "-key", "order-1", "flash", "-data", `{"product":"Hats","discount":20}`))
	var n int64
	require.NoError(t, s.env.DB.Model(&store.Event{}).Count(&n).Error)
	require.Equal(t, int64(1), n)

	out = s.mustRun("event", "show", id)
	require.Equal(t, fmt.Sprintf("event %s on flash, fires at 2026-03-28T12:00:00Z, canceled: false\ndata: {\"product\":\"Hats\",\"discount\":20}\n", id), out)

	// With its occurrence, show prints its progress.
	var global store.Location
	require.NoError(t, s.env.DB.Where("app_id = ? AND name = ?", s.app.ID, "global").First(&global).Error)
	var rem store.Reminder
	require.NoError(t, s.env.DB.Where("app_id = ? AND `key` = ?", s.app.ID, "flash").First(&rem).Error)
	eventID, err := strconv.ParseInt(id, 10, 64)
	require.NoError(t, err)
	firedAt := now.Add(30 * time.Millisecond)
	occ := store.Occurrence{ReminderID: rem.ID, LocationID: global.ID, EventID: eventID, FireAt: now, ExpiresAt: now.Add(15 * time.Minute),
		State: store.OccFiring, GroupsTotal: 4, GroupsDone: 1, Delivered: 10, FiredAt: &firedAt}
	require.NoError(t, s.env.DB.Create(&occ).Error)
	out = s.mustRun("event", "show", id)
	require.Contains(t, out, fmt.Sprintf("occurrence  %d\n", occ.ID))
	require.Contains(t, out, "event       "+id+"\n")
	require.Contains(t, out, "groups      1 of 4 done (25%)")

	// At a later instant.
	out = s.mustRun("event", "post", "flash", "-data", `{"product":"Socks"}`, "-at", "2026-03-28T18:30:00+02:00")
	require.True(t, strings.HasSuffix(out, " on flash fires at 2026-03-28T16:30:00Z\n"), "output: %q", out)
}

func TestErrors(t *testing.T) {
	s := start(t)
	s.putPrayers()
	s.put("flash", map[string]any{"kind": "topic", "title": "Flash", "schema": map[string]any{
		"type": "object", "required": []string{"product"}, "properties": map[string]any{"product": map[string]any{"type": "string"}}}})

	// A port nothing listens on: taken, then closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + l.Addr().String()
	require.NoError(t, l.Close())

	env := func(url, key string) func(string) string {
		return func(name string) string {
			return map[string]string{"CHIME_API_URL": url, "CHIME_API_KEY": key}[name]
		}
	}
	for _, tc := range []struct {
		name    string
		getenv  func(string) string
		args    []string
		prefix  string
		mention []string
	}{
		{"API unreachable", env(closed, s.key), []string{"reminders"}, "cannot reach the API at " + closed, []string{"connection refused"}},
		{"API unreachable, by flag", env("", s.key), []string{"-api", closed, "upcoming", "fajr"}, "cannot reach the API at " + closed, nil},
		{"wrong key", env(s.url, "chk_wrong"), []string{"reminders"}, "the API refused the key (401): check CHIME_API_KEY or -key", nil},
		{"wrong key by flag", env(s.url, s.key), []string{"-key", s.key + "x", "timetable", "list", "fajr"}, "the API refused the key (401)", nil},
		{"missing key", env(s.url, ""), []string{"reminders"}, "no API key: set CHIME_API_KEY or pass -key", nil},
		{"bad -api URL: another scheme", env("", s.key), []string{"-api", "ftp://127.0.0.1:8080", "reminders"}, `the API address "ftp://127.0.0.1:8080" is not an http(s) URL`, nil},
		{"bad -api URL: no scheme", env("", s.key), []string{"-api", "127.0.0.1:8080", "reminders"}, `the API address "127.0.0.1:8080" is not an http(s) URL`, nil},
		{"bad CHIME_API_URL: no host", env("http://", s.key), []string{"reminders"}, `the API address "http://" is not an http(s) URL`, nil},
		{"422 from the API: event data", env(s.url, s.key), []string{"event", "post", "flash", "-data", `{"colour":"red"}`},
			"422 Unprocessable Entity: the data does not match the schema of topic \"flash\"; nothing was stored; data", []string{"product", "colour"}},
		{"422 from the API: a non-topic", env(s.url, s.key), []string{"event", "post", "fajr"},
			"422 Unprocessable Entity: ", []string{`"fajr" is a timetable reminder`, "topic: must be the key of a topic reminder"}},
		{"404 from the API", env(s.url, s.key), []string{"upcoming", "nope"}, `404 Not Found: no reminder "nope"`, nil},
		{"409 from the API", env(s.url, s.key), []string{"timetable", "list", "flash"}, "409 Conflict: ", []string{"only timetable reminders have a timetable"}},
		{"400 from the API", env(s.url, s.key), []string{"upcoming", "fajr", "-hours", "1000"}, "400 Bad Request: query parameter hours", nil},
		{"not an occurrence ID", env(s.url, s.key), []string{"occurrence", "abc"}, `occurrence: "abc" is not an occurrence ID`, nil},
		{"not an event ID", env(s.url, s.key), []string{"event", "show", "12x"}, `event show: "12x" is not an event ID`, nil},
		{"data not an object", env(s.url, s.key), []string{"event", "post", "flash", "-data", `["Hats"]`}, "event post: -data must be a JSON object", nil},
		{"at not RFC 3339", env(s.url, s.key), []string{"event", "post", "flash", "-at", "tomorrow"}, `event post: -at "tomorrow" is not an RFC 3339 instant`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runWith(tc.getenv, "", tc.args...)
			requireOneLine(t, err, tc.prefix, tc.mention...)
			require.Empty(t, out)
		})
	}

	t.Run("a timetable file that is not there", func(t *testing.T) {
		// A local file error is not a network error: the message names the
		// file, not the API.
		_, err := s.run("timetable", "import", "/nonexistent/times.csv")
		requireOneLine(t, err, "timetable import: open /nonexistent/times.csv: no such file or directory")
	})

	t.Run("422 from the API: a bad timetable lists its lines", func(t *testing.T) {
		csv := "location,zone,date,name,local_time\n" +
			"jakarta,Asia/Jakarta,2026-03-27,fajr,04:39\n" +
			"jakarta,Asia/Jakarta,2026-02-30,fajr,04:39\n" +
			"jakarta,Asia/Jakarta,2026-03-28,fajr,24:00\n"
		_, err := runWith(s.getenv, csv, "timetable", "import", "-")
		requireOneLine(t, err, "422 Unprocessable Entity: some timetable rows are not valid; none were stored; line 3: date: ",
			"2026-02-30", "; line 4: local_time: ")
		var n int64
		require.NoError(t, s.env.DB.Model(&store.DatedTime{}).Count(&n).Error)
		require.Zero(t, n)

		// Over five field errors: the first five and how many more.
		var many strings.Builder
		many.WriteString("location,date,name,local_time\n")
		for i := range 8 {
			fmt.Fprintf(&many, "nowhere-%d,2026-03-27,fajr,04:39\n", i)
		}
		_, err = runWith(s.getenv, many.String(), "timetable", "import", "-")
		requireOneLine(t, err, "422 Unprocessable Entity: ", "line 2: zone", "line 6: zone", "; and 3 more")
		require.NotContains(t, err.Error(), "line 7")
	})

	t.Run("usage errors", func(t *testing.T) {
		for _, tc := range []struct {
			args  []string
			first string
		}{
			{[]string{"frobnicate"}, `unknown command "frobnicate"`},
			{nil, "a command is required"},
			{[]string{"timetable"}, "timetable: import or list"},
			{[]string{"timetable", "export"}, `timetable: unknown subcommand "export"`},
			{[]string{"event", "delete", "1"}, `event: unknown subcommand "delete"`},
			{[]string{"upcoming"}, "upcoming: expected 1 argument(s), got 0"},
			{[]string{"upcoming", "a", "b"}, "upcoming: expected 1 argument(s), got 2"},
			{[]string{"upcoming", "fajr", "-hours", "many"}, "upcoming: invalid value"},
			{[]string{"-verbose", "reminders"}, "flag provided but not defined: -verbose"},
		} {
			t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
				out, err := s.run(tc.args...)
				require.Error(t, err)
				require.Empty(t, out)
				lines := strings.Split(err.Error(), "\n")
				require.True(t, strings.HasPrefix(lines[0], tc.first), "first line %q, want %q", lines[0], tc.first)
				if len(lines) > 1 {
					require.Equal(t, usage, strings.Join(lines[1:], "\n"), "what follows the first line is the usage")
				}
			})
		}
	})
}

// TestPrayer runs `chimectl prayer` against a real API over MariaDB: a
// location with coordinates prints one row per date in its local time, with
// the convention in the header; the method flag reaches the API; a location
// without coordinates is the API's one-line 422.
func TestPrayer(t *testing.T) {
	s := start(t)
	ctx := context.Background()
	require.NoError(t, s.client.Do(ctx, http.MethodPut, "/v1/locations/makkah",
		map[string]any{"zone": "Asia/Riyadh", "latitude": 21.4225, "longitude": 39.8262}, nil))

	out := s.mustRun("prayer", "makkah", "-date", "2016-06-04", "-days", "3", "-method", "umm_al_qura")
	head, table, _ := strings.Cut(out, "\n")
	require.Equal(t, "makkah (Asia/Riyadh), umm_al_qura, shafi, middle_of_the_night", head)
	got := rows(t, table, "DATE FAJR SUNRISE DHUHR ASR MAGHRIB ISHA")
	require.Len(t, got, 3)
	require.Equal(t, []string{"2016-06-04", "2016-06-05", "2016-06-06"}, []string{got[0][0], got[1][0], got[2][0]})
	// The Umm al-Qura timetable's fajr for Makkah on 2016-06-04 is 04:11
	// (prayer/testdata/Makkah-UmmAlQura.json).
	require.Equal(t, "04:11", got[0][1])

	// Another method changes the header and the times.
	mwl := rows(t, strings.SplitN(s.mustRun("prayer", "makkah", "-date", "2016-06-04", "-days", "1"), "\n", 2)[1], "DATE FAJR SUNRISE DHUHR ASR MAGHRIB ISHA")
	require.NotEqual(t, got[0][6], mwl[0][6], "isha by Muslim World League differs from Umm al-Qura's fixed interval")

	require.NoError(t, s.client.Do(ctx, http.MethodPut, "/v1/locations/paris", map[string]any{"zone": "Europe/Paris"}, nil))
	_, err := s.run("prayer", "paris")
	requireOneLine(t, err, "422 Unprocessable Entity", "no coordinates")
	_, err = s.run("prayer", "makkah", "-days", "40")
	requireOneLine(t, err, "400 Bad Request", "days")
	_, err = s.run("prayer")
	require.ErrorContains(t, err, "prayer: expected 1 argument(s), got 0")
}
