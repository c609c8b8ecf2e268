package console_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/console"
	"github.com/chime-dev/chime/internal/testenv"
	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/prayer"
)

// expectedFirst is the first fire of local time hh:mm in zone after now, as
// the timeline writes it on the location's clock and in UTC.
func expectedFirst(t *testing.T, now time.Time, zone, hhmm string) (local, utc string) {
	t.Helper()
	loc, err := localtime.LoadZone(zone)
	require.NoError(t, err)
	o, err := localtime.Parse(hhmm)
	require.NoError(t, err)
	at := localtime.Next(now, o, loc)
	return at.In(loc).Format("Mon 02 Jan 15:04:05 MST"), at.UTC().Format("Mon 02 Jan 15:04:05 UTC")
}

// Injects: a real Chromium driving the console of a running coordinator
// and worker (real MariaDB, Redis, webhook sink), signed in as app A's
// editor, then its viewer, then app B's editor.
// Checks, in order: a daily reminder in three zones, typed into the
// editor, shows each zone's first fire on the timeline at the local time
// and UTC instant localtime computes, and saves; a reminder titled
// <script> shows the title as text and runs nothing; a CSV with one bad
// row is shown with that row's error and stores nothing, and once fixed is
// checked and committed whole; a latitude out of range is refused beside
// its field, then a location's coordinates and method are saved and its
// week of prayer times (madhab overridden) is GET prayer-times' to the
// minute, local and UTC; a prayer reminder with a bad RRULE and a bad
// offset shows both beside their fields and stores nothing, and with
// weekdays from the menu its timeline is package prayer's fajr -10m and
// maghrib +5m on weekdays by the location's convention (weekend dates
// marked as not firing), as the saved reminder's upcoming fires are; a
// once reminder fired to 2,000 subscribers is watched in the live view
// (over server-sent events) until done, with 2,000 delivered and every
// group done, and, with the session's streams all held by another client,
// a test send from its page to one of the 2,000 reaches done (polling)
// with 1 delivered and nobody else sent to, while one to a
// non-subscriber shows the reason beside the form; A's viewer sees no save
// button for a reminder or a location, and forged saves of either are
// refused 403; B's editor sees none of A's reminders and locations and
// gets 404 for them by URL.
func TestConsoleInBrowser(t *testing.T) {
	b := setup(t)
	ctx := browser(t, 1280, 800)
	b.login(t, ctx, "editor@a.example")
	shot(t, ctx, "reminders-empty")

	t.Run("daily reminder in three zones", func(t *testing.T) {
		zones := []struct{ loc, zone, at string }{
			{"paris", "Europe/Paris", "08:00"}, {"tokyo", "Asia/Tokyo", "08:00"}, {"new-york", "America/New_York", "07:30"},
		}
		do(t, ctx, chromedp.Navigate(b.url+"/console/reminders/new"), chromedp.WaitVisible(css("#key")),
			chromedp.SendKeys(css("#key"), "morning"), chromedp.SendKeys(css("#title"), "Good morning"),
			chromedp.SendKeys(css("#body"), "Time to stretch."))
		for i, z := range zones {
			do(t, ctx,
				chromedp.SendKeys(css(fmt.Sprintf("#t%d-location", i)), z.loc),
				chromedp.SendKeys(css(fmt.Sprintf("#t%d-zone", i)), z.zone),
				chromedp.SendKeys(css(fmt.Sprintf("#t%d-local_time", i)), z.at))
		}
		do(t, ctx, chromedp.WaitVisible(css(`#timeline section[data-location="new-york"] td.utc`)))
		now := time.Now()
		for _, z := range zones {
			local, utc := expectedFirst(t, now, z.zone, z.at)
			sel := fmt.Sprintf(`#timeline section[data-location="%s"]`, z.loc)
			first := get(t, ctx, chromedp.Text(css(sel+" tbody tr:first-child td.local")))
			firstUTC := get(t, ctx, chromedp.Text(css(sel+" tbody tr:first-child td.utc")))
			require.Contains(t, first, local, z.zone)
			require.Equal(t, utc, strings.TrimSpace(firstUTC), z.zone)
			rows := get(t, ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll('%s tbody tr').length`, sel)))
			require.Contains(t, []int{7, 8}, rows, "7 days of one daily time")
		}
		shot(t, ctx, "editor")
		do(t, ctx, chromedp.Click(css("#save")), chromedp.WaitVisible(css("#subscribers")))
		require.Equal(t, "Good morning", get(t, ctx, chromedp.Text(css("#title"))))
		shot(t, ctx, "reminder")
		var rem struct {
			Times []struct{ Location, Zone, LocalTime string } `json:"times"`
		}
		require.Equal(t, 200, b.call(b.keyA, "GET", "/v1/reminders/morning", "", nil, &rem))
		require.Len(t, rem.Times, 3)
	})

	t.Run("a script title is text", func(t *testing.T) {
		title := `<script>window.pwned=1</script><img src=x onerror="window.pwned=2">`
		require.Equal(t, 201, b.call(b.keyA, "PUT", "/v1/reminders/xss", "", map[string]any{
			"title": title, "times": []map[string]string{{"location": "paris", "zone": "Europe/Paris", "local_time": "09:00"}}}, nil))
		do(t, ctx, chromedp.Navigate(b.url+"/console/reminders?q=xss"), chromedp.WaitVisible(css("#reminders td.title")))
		require.Equal(t, title, get(t, ctx, chromedp.Text(css("#reminders td.title"))))
		do(t, ctx, chromedp.Navigate(b.url+"/console/reminders/xss"), chromedp.WaitVisible(css("#title")))
		require.Equal(t, title, get(t, ctx, chromedp.Text(css("#title"))))
		require.True(t, get(t, ctx, chromedp.Evaluate[bool](`window.pwned === undefined && document.querySelectorAll('main script, main img').length === 0`)))
	})

	t.Run("timetable import", func(t *testing.T) {
		require.Equal(t, 201, b.call(b.keyA, "PUT", "/v1/reminders/fajr", "", map[string]any{"kind": "timetable", "title": "Fajr"}, nil))
		bad := "location,zone,date,name,local_time\njakarta,Asia/Jakarta,2027-03-01,fajr,04:41\njakarta,Asia/Jakarta,2027-02-30,fajr,04:42\njakarta,Asia/Jakarta,2027-03-03,fajr,04:42\n"
		do(t, ctx, chromedp.Navigate(b.url+"/console/import"), chromedp.WaitVisible(css("#csv")),
			chromedp.SetValue(css("#csv"), bad), chromedp.Click(css("#check")), chromedp.WaitVisible(css("#rows tr.bad")))
		require.Equal(t, "3", get(t, ctx, chromedp.Text(css("#rows tr.bad td:first-child"))))
		require.Contains(t, get(t, ctx, chromedp.Text(css("#rows tr.bad"))), "date")
		require.Equal(t, 0, get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('#commit').length`)))
		shot(t, ctx, "import-errors")
		var tt struct{ Rows []any }
		require.Equal(t, 200, b.call(b.keyA, "GET", "/v1/reminders/fajr/timetable", "", nil, &tt))
		require.Empty(t, tt.Rows, "a checked file stores nothing")
		do(t, ctx, chromedp.SetValue(css("#csv"), strings.Replace(bad, "2027-02-30", "2027-03-02", 1)),
			chromedp.Click(css("#check")), chromedp.WaitVisible(css("#commit")))
		require.Equal(t, 0, get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('#rows tr.bad').length`)))
		do(t, ctx, chromedp.Click(css("#commit")), chromedp.WaitVisible(css("#done")))
		require.Contains(t, get(t, ctx, chromedp.Text(css("#done"))), "Imported 3 rows")
		require.Equal(t, 200, b.call(b.keyA, "GET", "/v1/reminders/fajr/timetable", "", nil, &tt))
		require.Len(t, tt.Rows, 3)
	})

	t.Run("location coordinates and a week of prayer times", func(t *testing.T) {
		require.Equal(t, 201, b.call(b.keyA, "PUT", "/v1/locations/makkah", "", map[string]any{"zone": "Asia/Riyadh"}, nil))
		do(t, ctx, chromedp.Navigate(b.url+"/console/locations"), chromedp.WaitVisible(css(`#locations tr[data-location="makkah"]`)))
		require.Contains(t, get(t, ctx, chromedp.Text(css(`#locations tr[data-location="makkah"] td.coords`))), "none")
		do(t, ctx, chromedp.Click(css(`#locations tr[data-location="makkah"] a`)), chromedp.WaitVisible(css("#latitude")))
		require.Equal(t, 0, get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('#week').length`)), "no coordinates, no times")
		// A latitude out of range: the API's problem beside the field, nothing stored.
		do(t, ctx, chromedp.SetValue(css("#latitude"), "91"), chromedp.SetValue(css("#longitude"), "39.8262"),
			chromedp.Click(css("#save-location")), chromedp.WaitVisible(css("#latitude + .err")))
		require.Contains(t, get(t, ctx, chromedp.Text(css("#latitude + .err"))), "-90 to 90")
		var l struct {
			Latitude *float64 `json:"latitude"`
			Method   string   `json:"method"`
		}
		require.Equal(t, 200, b.call(b.keyA, "GET", "/v1/locations/makkah", "", nil, &l))
		require.Nil(t, l.Latitude)
		do(t, ctx, chromedp.SetValue(css("#latitude"), "21.4225"), chromedp.SetValue(css("#elevation"), "277"),
			chromedp.SetValue(css("#method"), "umm_al_qura"), chromedp.Click(css("#save-location")), chromedp.WaitVisible(css("#saved")))
		require.Contains(t, get(t, ctx, chromedp.Text(css("#coords"))), "latitude 21.4225, longitude 39.8262, elevation 277 m")
		require.Equal(t, 200, b.call(b.keyA, "GET", "/v1/locations/makkah", "", nil, &l))
		require.Equal(t, 21.4225, *l.Latitude)
		require.Equal(t, "umm_al_qura", l.Method)

		// A chosen week, with the madhab overridden, is the API's preview.
		do(t, ctx, chromedp.SetValue(css("#week-date"), "2027-01-04"), chromedp.SetValue(css("#week-madhab"), "hanafi"),
			chromedp.Click(css("#show-week")), chromedp.WaitVisible(css(`#week tr[data-date="2027-01-04"]`)))
		cells := map[string]map[string][2]string{}
		raw := get(t, ctx, chromedp.Evaluate[string](`JSON.stringify(Array.from(document.querySelectorAll('#week tbody tr')).reduce(function (m, tr) {
			m[tr.dataset.date] = {}; tr.querySelectorAll('td').forEach(function (td) {
				m[tr.dataset.date][td.dataset.prayer] = [td.querySelector('.local').textContent, td.querySelector('.utc').textContent] });
			return m }, {}))`))
		require.NoError(t, json.Unmarshal([]byte(raw), &cells))
		riyadh, err := localtime.LoadZone("Asia/Riyadh")
		require.NoError(t, err)
		var pt, shafi struct {
			Days []struct {
				Date string               `json:"date"`
				UTC  map[string]time.Time `json:"utc"`
			} `json:"days"`
		}
		require.Equal(t, 200, b.call(b.keyA, "GET", "/v1/locations/makkah/prayer-times?date=2027-01-04&days=7&madhab=hanafi", "", nil, &pt))
		require.Len(t, pt.Days, 7)
		require.Len(t, cells, 7)
		for _, d := range pt.Days {
			require.Len(t, cells[d.Date], len(d.UTC), d.Date)
			for name, at := range d.UTC {
				require.Equal(t, [2]string{at.In(riyadh).Format("15:04 MST"), at.UTC().Format("15:04 UTC")}, cells[d.Date][name], d.Date+" "+name)
			}
		}
		require.Equal(t, 200, b.call(b.keyA, "GET", "/v1/locations/makkah/prayer-times?date=2027-01-04&days=7", "", nil, &shafi))
		require.NotEqual(t, shafi.Days[0].UTC["asr"], pt.Days[0].UTC["asr"], "the madhab override changes asr")
		require.Contains(t, get(t, ctx, chromedp.Text(css("#week-convention"))), "umm_al_qura, madhab hanafi")
		shot(t, ctx, "location")
	})

	t.Run("prayer reminder with a recurrence", func(t *testing.T) {
		do(t, ctx, chromedp.Navigate(b.url+"/console/reminders/new?kind=prayer"), chromedp.WaitVisible(css("#p0-prayer")),
			chromedp.SendKeys(css("#key"), "prayers"), chromedp.SendKeys(css("#title"), "Prayer time"),
			chromedp.SendKeys(css("#l0-location"), "makkah"), chromedp.SendKeys(css("#l0-zone"), "Asia/Riyadh"),
			chromedp.SetValue(css("#p0-prayer"), "fajr"), chromedp.SendKeys(css("#p0-offset"), "-10m"),
			chromedp.SetValue(css("#p1-prayer"), "maghrib"), chromedp.SendKeys(css("#p1-offset"), "5 minutes"),
			chromedp.SendKeys(css("#recurrence"), "FREQ=SOMETIMES"))
		require.Equal(t, "custom", get(t, ctx, chromedp.Evaluate[string](`document.getElementById('recurrence_preset').value`)))
		do(t, ctx, chromedp.Click(css("#save")), chromedp.WaitVisible(css("#recurrence + .err")))
		require.Contains(t, get(t, ctx, chromedp.Text(css("#recurrence + .err"))), "not an RFC 5545 RRULE")
		require.Contains(t, get(t, ctx, chromedp.Text(css("#p1-offset + .err"))), "whole-second duration")
		require.Equal(t, 0, get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('#p0-offset + .err').length`)))
		shot(t, ctx, "editor-prayer-errors")
		require.Equal(t, 404, b.call(b.keyA, "GET", "/v1/reminders/prayers", "", nil, nil), "nothing stored")

		// Fixed: weekdays from the menu, maghrib 5 minutes after.
		const weekdays = "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"
		do(t, ctx, chromedp.SetValue(css("#p1-offset"), "5m"), chromedp.Evaluate[chromedp.Void](`(function () {
			var p = document.getElementById('recurrence_preset'); p.value = '`+weekdays+`';
			p.dispatchEvent(new Event('change', {bubbles: true})) })()`))
		require.Equal(t, weekdays, get(t, ctx, chromedp.Evaluate[string](`document.getElementById('recurrence').value`)))
		riyadh, err := localtime.LoadZone("Asia/Riyadh")
		require.NoError(t, err)
		params, err := prayer.MethodParams("umm_al_qura") // the location's override of the reminder's default
		require.NoError(t, err)
		coords := prayer.Coordinates{Latitude: 21.4225, Longitude: 39.8262, Elevation: 277}
		// expected are the fires of fajr -10m and maghrib +5m on weekdays
		// in (from, to], by package prayer.
		expected := func(from, to time.Time) []string {
			var out []string
			for _, d := range localtime.Dates(from.Add(-48*time.Hour), to.Add(48*time.Hour), riyadh) {
				if wd := d.Midnight().Weekday(); wd == time.Saturday || wd == time.Sunday {
					continue
				}
				times, err := prayer.Compute(d, riyadh, coords, params)
				require.NoError(t, err)
				for _, f := range []struct {
					p   prayer.Prayer
					off time.Duration
				}{{prayer.Fajr, -10 * time.Minute}, {prayer.Maghrib, 5 * time.Minute}} {
					if at := times.Of(f.p).Add(f.off); at.After(from) && !at.After(to) {
						out = append(out, string(f.p)+" "+at.UTC().Format("Mon 02 Jan 15:04:05 UTC"))
					}
				}
			}
			sort.Strings(out)
			return out
		}
		var shown, want []string
		testenv.WaitUntil(t, 10*time.Second, "the timeline shows the weekdays' fajr and maghrib", func() bool {
			raw := get(t, ctx, chromedp.Evaluate[string](`JSON.stringify({span: document.getElementById('timeline-span').dataset,
				days: document.querySelectorAll('#timeline section[data-location="makkah"] .days li').length,
				fires: Array.from(document.querySelectorAll('#timeline section[data-location="makkah"] tbody tr')).map(function (tr) {
					return tr.dataset.prayer + ' ' + tr.querySelector('td.utc').textContent.trim() })})`))
			var tl struct {
				Span  struct{ From, To time.Time }
				Days  int
				Fires []string
			}
			require.NoError(t, json.Unmarshal([]byte(raw), &tl))
			shown, want = tl.Fires, expected(tl.Span.From, tl.Span.To)
			sort.Strings(shown)
			return tl.Days > 0 && strings.Join(shown, "\n") == strings.Join(want, "\n")
		})
		require.GreaterOrEqual(t, len(want), 8, "five weekdays of two prayers, less what falls out of the span")
		off := get(t, ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#timeline section[data-location="makkah"] .days li.off')).map(function (li) { return li.dataset.date })`))
		// The span's days marked off are its Saturdays and Sundays, however
		// many the span holds (its first weekday is today's).
		days := get(t, ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('#timeline section[data-location="makkah"] .days li')).map(function (li) { return li.dataset.date })`))
		var weekend []string
		for _, d := range days {
			day, err := time.Parse(time.DateOnly, d)
			require.NoError(t, err)
			if wd := day.Weekday(); wd == time.Saturday || wd == time.Sunday {
				weekend = append(weekend, d)
			}
		}
		require.GreaterOrEqual(t, len(weekend), 2, "a week's span holds a Saturday and a Sunday: %v", days)
		require.Equal(t, weekend, off, "Saturday and Sunday do not fire, the other days do")
		shot(t, ctx, "editor-prayer")

		do(t, ctx, chromedp.Click(css("#save")), chromedp.WaitVisible(css("#subscribers")))
		var rem struct {
			Recurrence string                            `json:"recurrence"`
			Prayers    []struct{ Prayer, Offset string } `json:"prayers"`
		}
		require.Contains(t, get(t, ctx, chromedp.Text(css("#prayers"))), "fajr -10m0s, maghrib 5m0s")
		shot(t, ctx, "reminder-prayer")
		require.Equal(t, 200, b.call(b.keyA, "GET", "/v1/reminders/prayers", "", nil, &rem))
		require.Equal(t, weekdays, rem.Recurrence)
		require.Equal(t, []struct{ Prayer, Offset string }{{"fajr", "-10m0s"}, {"maghrib", "5m0s"}}, rem.Prayers)
		// The scheduler's own fires (package fire, through the API) are the same.
		var up struct {
			From, To time.Time
			Upcoming []struct {
				Prayer string    `json:"prayer"`
				FireAt time.Time `json:"fire_at"`
			}
		}
		require.Equal(t, 200, b.call(b.keyA, "GET", "/v1/reminders/prayers/upcoming?hours=168", "", nil, &up))
		var planned []string
		for _, u := range up.Upcoming {
			planned = append(planned, u.Prayer+" "+u.FireAt.UTC().Format("Mon 02 Jan 15:04:05 UTC"))
		}
		sort.Strings(planned)
		require.Equal(t, expected(up.From, up.To), planned)
		do(t, ctx, chromedp.Navigate(b.url+"/console/reminders/prayers/edit"), chromedp.WaitVisible(css("#recurrence")))
		require.Equal(t, weekdays, get(t, ctx, chromedp.Evaluate[string](`document.getElementById('recurrence_preset').value`)))
		require.Equal(t, "-10m0s", get(t, ctx, chromedp.Evaluate[string](`document.getElementById('p0-offset').value`)))
	})

	t.Run("live view of a fire to 2000 users", func(t *testing.T) {
		const users = 2000
		far := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		put := func(at time.Time) {
			require.Contains(t, []int{200, 201}, b.call(b.keyA, "PUT", "/v1/reminders/blast", "", map[string]any{
				"kind": "once", "title": "Flash sale", "at": at, "groups": 8, "valid_for": "10m"}, nil))
		}
		put(far)
		subs := make([]map[string]string, users)
		for i := range subs {
			subs[i] = map[string]string{"user_id": strconv.Itoa(500000 + i), "location": "global"}
		}
		require.Equal(t, 200, b.call(b.keyA, "POST", "/v1/reminders/blast/subscribers", "", map[string]any{"subscribers": subs}, nil))
		fireAt := time.Now().Add(4 * time.Second).UTC().Truncate(time.Second).Add(time.Second)
		put(fireAt)
		var id int64
		testenv.WaitUntil(t, 20*time.Second, "the fire planned", func() bool {
			var occ struct {
				Occurrences []struct {
					ID     int64     `json:"id"`
					FireAt time.Time `json:"fire_at"`
				} `json:"occurrences"`
			}
			b.call(b.keyA, "GET", "/v1/occurrences?reminder=blast", "", nil, &occ)
			for _, o := range occ.Occurrences {
				if o.FireAt.Equal(fireAt) {
					id = o.ID
				}
			}
			return id != 0
		})
		do(t, ctx, chromedp.Navigate(fmt.Sprintf("%s/console/occurrences/%d", b.url, id)), chromedp.WaitVisible(css("#state")))
		require.Equal(t, "stream", get(t, ctx, chromedp.Evaluate[string](`document.getElementById('live').dataset.via`)), "followed by server-sent events")
		shot(t, ctx, "live-before")
		testenv.WaitUntil(t, 60*time.Second, "the live view says done", func() bool {
			// One read of the whole view: the script replaces it every second.
			v := get(t, ctx, chromedp.Evaluate[string](`document.getElementById('state').textContent + ' ' + document.getElementById('delivered').textContent`))
			var o struct{ State string }
			b.call(b.keyA, "GET", fmt.Sprintf("/v1/occurrences/%d", id), "", nil, &o)
			t.Logf("live view: %s delivered; the API says %s", v, o.State)
			return strings.HasPrefix(v, "done ")
		})
		require.Equal(t, strconv.Itoa(users), get(t, ctx, chromedp.Evaluate[string](`document.getElementById('delivered').textContent`)))
		require.Equal(t, "8/8", get(t, ctx, chromedp.Evaluate[string](`document.getElementById('groups').textContent`)))
		require.Equal(t, "0", get(t, ctx, chromedp.Evaluate[string](`document.getElementById('failed').textContent`)))
		require.Equal(t, users, b.sink.Stats().Users)
		shot(t, ctx, "live-done")

		// The session's live streams all taken (by a client holding its
		// cookie, on an occurrence an hour ahead): the next live view polls.
		require.Equal(t, 201, b.call(b.keyA, "PUT", "/v1/reminders/held", "", map[string]any{
			"kind": "once", "title": "Held", "at": time.Now().Add(time.Hour).UTC().Truncate(time.Second)}, nil))
		require.Equal(t, 200, b.call(b.keyA, "POST", "/v1/reminders/held/subscribers", "", map[string]any{
			"subscribers": []map[string]string{{"user_id": "500001", "location": "global"}}}, nil))
		var held int64
		testenv.WaitUntil(t, 20*time.Second, "the held occurrence planned", func() bool {
			var occ struct{ Occurrences []struct{ ID int64 } }
			b.call(b.keyA, "GET", "/v1/occurrences?reminder=held", "", nil, &occ)
			if len(occ.Occurrences) > 0 {
				held = occ.Occurrences[0].ID
			}
			return held != 0
		})
		cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.url + "/console/reminders"}})
		require.NoError(t, err)
		hc := b.client(t)
		base, _ := url.Parse(b.url + "/console/")
		for _, ck := range cookies.Cookies {
			hc.http.Jar.SetCookies(base, []*http.Cookie{{Name: ck.Name, Value: ck.Value, Path: ck.Path}})
		}
		for range console.DefaultLiveStreams {
			status, _, end := hc.stream(held)
			require.Equal(t, http.StatusOK, status)
			defer end()
		}

		// A test send to one of the 2,000 from the reminder's page.
		const one = "500007"
		before := b.sink.Stats().Deliveries
		do(t, ctx, chromedp.Navigate(b.url+"/console/reminders/blast"), chromedp.WaitVisible(css("#test-user")),
			chromedp.SendKeys(css("#test-user"), one), chromedp.Click(css("#test-send-button")), chromedp.WaitVisible(css("#state")))
		require.Contains(t, get(t, ctx, chromedp.Text(css("main"))), "test send to user "+one)
		testenv.WaitUntil(t, 10*time.Second, "the live view polls, its session's streams taken", func() bool {
			return get(t, ctx, chromedp.Evaluate[string](`document.getElementById('live').dataset.via`)) == "poll"
		})
		testenv.WaitUntil(t, 30*time.Second, "the test send's live view says done", func() bool {
			v := get(t, ctx, chromedp.Evaluate[string](`document.getElementById('state').textContent + ' ' + document.getElementById('delivered').textContent`))
			return v == "done 1"
		})
		require.Equal(t, "1/1", get(t, ctx, chromedp.Evaluate[string](`document.getElementById('groups').textContent`)))
		require.Equal(t, 2, b.sink.Count(one))
		require.Equal(t, before+1, b.sink.Stats().Deliveries, "nobody else got the test send")
		shot(t, ctx, "test-send-done")
		do(t, ctx, chromedp.Navigate(b.url+"/console/reminders/blast"), chromedp.WaitVisible(css("#test-user")),
			chromedp.SendKeys(css("#test-user"), "not-a-subscriber"), chromedp.Click(css("#test-send-button")),
			chromedp.WaitVisible(css("#test-send .err")))
		require.Contains(t, get(t, ctx, chromedp.Text(css("#test-send"))), "user_id: must be a subscriber")
	})

	t.Run("pages", func(t *testing.T) {
		for _, p := range []string{"reminders", "locations", "audit", "reminders/fajr/pause"} {
			do(t, ctx, chromedp.Navigate(b.url+"/console/"+p), chromedp.WaitVisible(css("h1")))
			shot(t, ctx, strings.ReplaceAll(p, "/", "-"))
		}
		require.Contains(t, get(t, ctx, chromedp.Text(css("#skipped-summary"))), "skips every fire")
		audit := ""
		do(t, ctx, chromedp.Navigate(b.url+"/console/audit"), chromedp.WaitVisible(css("#audit")))
		audit = get(t, ctx, chromedp.Text(css("#audit")))
		require.Contains(t, audit, "editor@a.example")
		require.Contains(t, audit, "PUT /v1/reminders/{key}")
		do(t, ctx, chromedp.Navigate(b.url+"/console/reminders/morning/edit"), chromedp.WaitVisible(css("#title")))
		do(t, ctx, chromedp.EmulateViewport(390, 844))
		shot(t, ctx, "editor-phone")
		do(t, ctx, chromedp.EmulateViewport(1280, 800))
	})

	t.Run("page weights", func(t *testing.T) {
		weights := map[string]map[string]int{}
		for name, p := range map[string]string{"reminders": "/console/reminders", "editor": "/console/reminders/morning/edit"} {
			// A first visit: nothing cached.
			do(t, ctx, chromedp.Navigate("about:blank"))
			_, err := chromedp.Call(ctx, network.ClearBrowserCache, cdp.Empty{})
			require.NoError(t, err)
			do(t, ctx, chromedp.Navigate(b.url+p), chromedp.WaitVisible(css("h1")))
			raw := get(t, ctx, chromedp.Evaluate[string](`JSON.stringify({doc: performance.getEntriesByType('navigation')[0].transferSize,
				assets: performance.getEntriesByType('resource').reduce(function (n, e) { return n + e.transferSize }, 0)})`))
			var w map[string]int
			require.NoError(t, json.Unmarshal([]byte(raw), &w))
			require.Positive(t, w["doc"])
			weights[name] = w
		}
		line, _ := json.Marshal(weights)
		t.Logf("page weights (bytes transferred on a first visit: the page, and its script and style sheet): %s", line)
	})

	t.Run("viewer cannot save", func(t *testing.T) {
		b.logout(t, ctx)
		b.login(t, ctx, "viewer@a.example")
		do(t, ctx, chromedp.Navigate(b.url+"/console/reminders/morning/edit"), chromedp.WaitVisible(css("#title")))
		require.Equal(t, 0, get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('#save').length`)))
		require.True(t, get(t, ctx, chromedp.Evaluate[bool](`document.querySelector('#editor fieldset').disabled`)))
		status := get(t, ctx, chromedp.Evaluate[int](`(function () {
			var f = new FormData(); f.append('csrf', document.querySelector('input[name=csrf]').value);
			f.append('key', 'morning'); f.append('title', 'Changed by a viewer'); f.append('times.location', 'paris');
			f.append('times.zone', 'Europe/Paris'); f.append('times.local_time', '10:00');
			return fetch('/console/reminders/save', {method: 'POST', body: f}).then(function (r) { return r.status });
		})()`, chromedp.EvalAwaitPromise))
		require.Equal(t, http.StatusForbidden, status)
		var rem struct{ Title string }
		require.Equal(t, 200, b.call(b.keyA, "GET", "/v1/reminders/morning", "", nil, &rem))
		require.Equal(t, "Good morning", rem.Title)

		do(t, ctx, chromedp.Navigate(b.url+"/console/locations/makkah"), chromedp.WaitVisible(css("#latitude")))
		require.Equal(t, 0, get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('#save-location').length`)))
		require.True(t, get(t, ctx, chromedp.Evaluate[bool](`document.querySelector('#location-form fieldset').disabled`)))
		require.Equal(t, 7, get(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll('#week tbody tr').length`)), "a viewer sees the week")
		status = get(t, ctx, chromedp.Evaluate[int](`(function () {
			var f = new FormData(); f.append('csrf', document.querySelector('input[name=csrf]').value);
			f.append('latitude', '0'); f.append('longitude', '0');
			return fetch('/console/locations/makkah', {method: 'POST', body: f}).then(function (r) { return r.status });
		})()`, chromedp.EvalAwaitPromise))
		require.Equal(t, http.StatusForbidden, status)
		var l struct{ Latitude float64 }
		require.Equal(t, 200, b.call(b.keyA, "GET", "/v1/locations/makkah", "", nil, &l))
		require.Equal(t, 21.4225, l.Latitude)
	})

	t.Run("another app sees nothing", func(t *testing.T) {
		b.logout(t, ctx)
		b.login(t, ctx, "editor@b.example")
		require.Contains(t, get(t, ctx, chromedp.Text(css("#reminders"))), "No reminders")
		res := get(t, ctx, chromedp.NavigateResponse(b.url+"/console/reminders/morning"))
		require.Equal(t, int64(http.StatusNotFound), res.Status)
		do(t, ctx, chromedp.Navigate(b.url+"/console/occurrences/1"), chromedp.WaitVisible(css("h1")))
		require.NotContains(t, get(t, ctx, chromedp.Text(css("main"))), "Flash sale")
		res = get(t, ctx, chromedp.NavigateResponse(b.url+"/console/locations/makkah"))
		require.Equal(t, int64(http.StatusNotFound), res.Status)
		do(t, ctx, chromedp.Navigate(b.url+"/console/locations"), chromedp.WaitVisible(css("#locations")))
		require.NotContains(t, get(t, ctx, chromedp.Text(css("#locations"))), "makkah")
		res = get(t, ctx, chromedp.NavigateResponse(b.url+"/console/reminders/prayers/edit"))
		require.Equal(t, int64(http.StatusNotFound), res.Status)
	})
}
