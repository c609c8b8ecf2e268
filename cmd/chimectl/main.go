// Command chimectl is the command line of product managers and operators. It
// talks to a coordinator's HTTP API:
//
//	chimectl reminders                         list the app's reminders
//	chimectl upcoming KEY [-hours N]           the next fires per location
//	chimectl timetable import FILE             import a timetable CSV ("-" reads stdin)
//	chimectl timetable list KEY [-location L] [-from D] [-to D]
//	chimectl occurrences KEY [-state S] [-limit N]
//	chimectl occurrence ID                     one occurrence's progress
//	chimectl event post TOPIC [-data JSON] [-at RFC3339] [-key IDEMPOTENCY-KEY]
//	chimectl event show ID
//	chimectl prayer LOCATION [-date D] [-days N] [-method M] [-madhab M] [-high-latitude-rule R]
//	                                           a location's computed prayer times
//
// The API's address and key come from CHIME_API_URL (default
// http://127.0.0.1:8080) and CHIME_API_KEY, or the -api and -key flags
// before the command. Errors are one line on stderr and exit status 1; a
// usage error is followed by the usage text.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/chime-dev/chime/api"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chimectl:", err)
		os.Exit(1)
	}
}

const usage = `usage: chimectl [-api URL] [-key KEY] COMMAND
  reminders
  upcoming KEY [-hours N]
  timetable import FILE|-
  timetable list KEY [-location L] [-from YYYY-MM-DD] [-to YYYY-MM-DD]
  occurrences KEY [-state S] [-limit N]
  occurrence ID
  event post TOPIC [-data JSON] [-at RFC3339] [-key IDEMPOTENCY-KEY]
  event show ID
  prayer LOCATION [-date YYYY-MM-DD] [-days N] [-method M] [-madhab M] [-high-latitude-rule R]`

// cli is one invocation.
type cli struct {
	client *api.Client
	stdin  io.Reader
	out    io.Writer
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chimectl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	base := getenv("CHIME_API_URL")
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	fs.StringVar(&base, "api", base, "the API's address")
	key := fs.String("key", getenv("CHIME_API_KEY"), "the app's API key")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%v\n%s", err, usage)
	}
	args = fs.Args()
	if len(args) == 0 {
		return errors.New("a command is required\n" + usage)
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("the API address %q is not an http(s) URL", base)
	}
	if *key == "" {
		return errors.New("no API key: set CHIME_API_KEY or pass -key (chime app create NAME prints one)")
	}
	c := &cli{
		client: &api.Client{Base: strings.TrimRight(base, "/"), Key: *key, HTTP: &http.Client{Timeout: 2 * time.Minute}},
		stdin:  stdin, out: stdout,
	}
	err := c.dispatch(ctx, args)
	return explain(err, base)
}

// explain turns transport and API errors into one line saying what to do.
func explain(err error, base string) error {
	var se *api.StatusError
	var ue *url.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se) && se.Status == http.StatusUnauthorized:
		return errors.New("the API refused the key (401): check CHIME_API_KEY or -key")
	case errors.As(err, &se) && se.Problem != nil:
		msg := se.Problem.Detail
		for i, f := range se.Problem.Errors {
			if i == 5 {
				msg += fmt.Sprintf("; and %d more", len(se.Problem.Errors)-5)
				break
			}
			msg += "; " + f.Field + ": " + f.Message
		}
		return fmt.Errorf("%d %s: %s", se.Status, http.StatusText(se.Status), msg)
	case errors.As(err, &ue):
		// The HTTP client failed: no connection, no answer in time, TLS.
		return fmt.Errorf("cannot reach the API at %s: %v", base, ue.Err)
	}
	return err
}

func (c *cli) dispatch(ctx context.Context, args []string) error {
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "reminders":
		return c.reminders(ctx)
	case "upcoming":
		return c.upcoming(ctx, rest)
	case "timetable":
		if len(rest) == 0 {
			return errors.New("timetable: import or list\n" + usage)
		}
		switch rest[0] {
		case "import":
			return c.importTimetable(ctx, rest[1:])
		case "list":
			return c.listTimetable(ctx, rest[1:])
		}
		return fmt.Errorf("timetable: unknown subcommand %q\n%s", rest[0], usage)
	case "occurrences":
		return c.occurrences(ctx, rest)
	case "occurrence":
		return c.occurrence(ctx, rest)
	case "event":
		if len(rest) == 0 {
			return errors.New("event: post or show\n" + usage)
		}
		switch rest[0] {
		case "post":
			return c.postEvent(ctx, rest[1:])
		case "show":
			return c.showEvent(ctx, rest[1:])
		}
		return fmt.Errorf("event: unknown subcommand %q\n%s", rest[0], usage)
	case "prayer":
		return c.prayer(ctx, rest)
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

// parse reads flags that may come before or after the positional arguments
// and checks their count.
func parse(fs *flag.FlagSet, args []string, positional int) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != positional {
		return nil, fmt.Errorf("%s: expected %d argument(s), got %d\n%s", fs.Name(), positional, len(pos), usage)
	}
	return pos, nil
}

func (c *cli) table() *tabwriter.Writer { return tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0) }

func (c *cli) reminders(ctx context.Context) error {
	tw := c.table()
	fmt.Fprintln(tw, "KEY\tKIND\tPAUSED\tTIMES\tLOCATIONS\tVALID FOR\tGRACE\tTITLE")
	after := ""
	for {
		var page struct {
			Reminders []api.Reminder
			Next      string
		}
		path := "/v1/reminders?limit=1000"
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		if err := c.client.Do(ctx, http.MethodGet, path, nil, &page); err != nil {
			return err
		}
		for _, r := range page.Reminders {
			fmt.Fprintf(tw, "%s\t%s\t%t\t%d\t%d\t%s\t%s\t%s\n", r.Key, r.Kind, r.Paused, len(r.Times), len(r.Locations), r.ValidFor, r.Grace, r.Title)
		}
		if page.Next == "" {
			return tw.Flush()
		}
		after = page.Next
	}
}

func (c *cli) upcoming(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("upcoming", flag.ContinueOnError)
	hours := fs.Int("hours", 24, "how far ahead, 1 to 744")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	var out struct {
		Upcoming []api.Upcoming
	}
	if err := c.client.Do(ctx, http.MethodGet, fmt.Sprintf("/v1/reminders/%s/upcoming?hours=%d", url.PathEscape(pos[0]), *hours), nil, &out); err != nil {
		return err
	}
	tw := c.table()
	fmt.Fprintln(tw, "FIRE AT (UTC)\tLOCAL\tLOCATION\tZONE\tEVENT")
	for _, u := range out.Upcoming {
		ev := ""
		if u.EventID != 0 {
			ev = strconv.FormatInt(u.EventID, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.FireAt.UTC().Format(time.RFC3339), u.Local, u.Location, u.Zone, ev)
	}
	return tw.Flush()
}

func (c *cli) importTimetable(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("timetable import", flag.ContinueOnError)
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	in := c.stdin
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return fmt.Errorf("timetable import: %w", err)
		}
		defer f.Close()
		in = f
	}
	var out struct {
		Rows             int `json:"rows"`
		Reminders        int `json:"reminders"`
		LocationsCreated int `json:"locations_created"`
	}
	start := time.Now()
	if err := c.client.Send(ctx, http.MethodPost, "/v1/timetable", "text/csv", in, &out); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "imported %d rows for %d reminder(s), %d new location(s), in %s\n",
		out.Rows, out.Reminders, out.LocationsCreated, time.Since(start).Round(time.Millisecond))
	return nil
}

func (c *cli) listTimetable(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("timetable list", flag.ContinueOnError)
	loc := fs.String("location", "", "only this location")
	from := fs.String("from", "", "first date, YYYY-MM-DD")
	to := fs.String("to", "", "last date, YYYY-MM-DD")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	q := url.Values{"limit": {"10000"}}
	for k, v := range map[string]string{"location": *loc, "from": *from, "to": *to} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var out struct {
		Rows []api.TimetableRow
	}
	if err := c.client.Do(ctx, http.MethodGet, "/v1/reminders/"+url.PathEscape(pos[0])+"/timetable?"+q.Encode(), nil, &out); err != nil {
		return err
	}
	tw := c.table()
	fmt.Fprintln(tw, "DATE\tLOCAL TIME\tLOCATION\tZONE\tFIRE AT (UTC)")
	for _, r := range out.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Date, r.LocalTime, r.Location, r.Zone, r.FireAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func (c *cli) occurrences(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("occurrences", flag.ContinueOnError)
	state := fs.String("state", "", "only this state")
	limit := fs.Int("limit", 20, "how many, newest first")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	q := url.Values{"reminder": {pos[0]}, "limit": {strconv.Itoa(*limit)}}
	if *state != "" {
		q.Set("state", *state)
	}
	var out struct {
		Occurrences []api.Occurrence
	}
	if err := c.client.Do(ctx, http.MethodGet, "/v1/occurrences?"+q.Encode(), nil, &out); err != nil {
		return err
	}
	tw := c.table()
	fmt.Fprintln(tw, "ID\tFIRE AT (UTC)\tLOCATION\tSTATE\tGROUPS\tDELIVERED\tFAILED\tEXPIRED\tLATE")
	for _, o := range out.Occurrences {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d/%d\t%d\t%d\t%d\t%s\n", o.ID, o.FireAt.UTC().Format(time.RFC3339), o.Location, o.State,
			o.GroupsDone, o.GroupsTotal, o.Delivered, o.Failed, o.Expired, lateness(o))
	}
	return tw.Flush()
}

func lateness(o api.Occurrence) string {
	if o.LateMs == nil {
		return ""
	}
	return (time.Duration(*o.LateMs) * time.Millisecond).String()
}

func (c *cli) occurrence(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("occurrence", flag.ContinueOnError)
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseInt(pos[0], 10, 64); err != nil {
		return fmt.Errorf("occurrence: %q is not an occurrence ID (a number)", pos[0])
	}
	var o api.Occurrence
	if err := c.client.Do(ctx, http.MethodGet, "/v1/occurrences/"+pos[0], nil, &o); err != nil {
		return err
	}
	c.printOccurrence(o)
	return nil
}

func (c *cli) printOccurrence(o api.Occurrence) {
	tw := c.table()
	fmt.Fprintf(tw, "occurrence\t%d\n", o.ID)
	fmt.Fprintf(tw, "reminder\t%s\n", o.Reminder)
	if o.EventID != 0 {
		fmt.Fprintf(tw, "event\t%d\n", o.EventID)
	}
	fmt.Fprintf(tw, "location\t%s (%s)\n", o.Location, o.Zone)
	fmt.Fprintf(tw, "fire at\t%s\n", o.FireAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(tw, "state\t%s\n", o.State)
	pct := 0.0
	if o.GroupsTotal > 0 {
		pct = 100 * float64(o.GroupsDone) / float64(o.GroupsTotal)
	}
	fmt.Fprintf(tw, "groups\t%d of %d done (%.0f%%)\n", o.GroupsDone, o.GroupsTotal, pct)
	fmt.Fprintf(tw, "users\t%d delivered, %d failed, %d expired\n", o.Delivered, o.Failed, o.Expired)
	if o.LateMs != nil {
		fmt.Fprintf(tw, "fired\t%s after its instant (late: %t)\n", lateness(o), o.Late)
	}
	if o.DoneAt != nil {
		fmt.Fprintf(tw, "done at\t%s\n", o.DoneAt.UTC().Format(time.RFC3339))
	}
	_ = tw.Flush()
}

func (c *cli) postEvent(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("event post", flag.ContinueOnError)
	data := fs.String("data", "{}", "the event's data, a JSON object")
	at := fs.String("at", "", "when to fire, RFC 3339 (default now)")
	idem := fs.String("key", "", "an Idempotency-Key, to make a retry safe")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if !json.Valid([]byte(*data)) || !strings.HasPrefix(strings.TrimSpace(*data), "{") {
		return fmt.Errorf("event post: -data must be a JSON object, such as '{\"product\":\"shoes\"}'")
	}
	body := map[string]any{"topic": pos[0], "data": json.RawMessage(*data)}
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return fmt.Errorf("event post: -at %q is not an RFC 3339 instant such as 2026-03-01T18:00:00Z", *at)
		}
		body["at"] = t
	}
	var ev api.Event
	req := *c.client
	if *idem != "" {
		req.Header = http.Header{"Idempotency-Key": {*idem}}
	}
	if err := req.Do(ctx, http.MethodPost, "/v1/events", body, &ev); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "event %d on %s fires at %s\n", ev.ID, ev.Topic, ev.FireAt.UTC().Format(time.RFC3339))
	return nil
}

func (c *cli) showEvent(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("event show", flag.ContinueOnError)
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseInt(pos[0], 10, 64); err != nil {
		return fmt.Errorf("event show: %q is not an event ID (a number)", pos[0])
	}
	var ev api.Event
	if err := c.client.Do(ctx, http.MethodGet, "/v1/events/"+pos[0], nil, &ev); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "event %d on %s, fires at %s, canceled: %t\ndata: %s\n", ev.ID, ev.Topic, ev.FireAt.UTC().Format(time.RFC3339), ev.Canceled, ev.Data)
	for _, o := range ev.Occurrences {
		fmt.Fprintln(c.out)
		c.printOccurrence(o)
	}
	return nil
}

// prayer prints a location's computed prayer times, one row per date, in the
// location's local time (the header names the zone and the convention).
func (c *cli) prayer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("prayer", flag.ContinueOnError)
	date := fs.String("date", "", "the first local date, YYYY-MM-DD (default today in the location's zone)")
	days := fs.Int("days", 7, "how many dates, 1 to 31")
	method := fs.String("method", "", "the convention, e.g. muslim_world_league (default the location's, else muslim_world_league)")
	madhab := fs.String("madhab", "", "shafi or hanafi, for asr")
	rule := fs.String("high-latitude-rule", "", "middle_of_the_night, seventh_of_the_night or twilight_angle")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	q := url.Values{"days": {strconv.Itoa(*days)}}
	for name, v := range map[string]string{"date": *date, "method": *method, "madhab": *madhab, "high_latitude_rule": *rule} {
		if v != "" {
			q.Set(name, v)
		}
	}
	var out api.PrayerTimes
	if err := c.client.Do(ctx, http.MethodGet, "/v1/locations/"+url.PathEscape(pos[0])+"/prayer-times?"+q.Encode(), nil, &out); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "%s (%s), %s, %s, %s\n", out.Location, out.Zone, out.Method, out.Madhab, out.HighLatitudeRule)
	tw := c.table()
	fmt.Fprintln(tw, "DATE\tFAJR\tSUNRISE\tDHUHR\tASR\tMAGHRIB\tISHA")
	for _, d := range out.Days {
		row := d.Date
		for _, name := range []string{"fajr", "sunrise", "dhuhr", "asr", "maghrib", "isha"} {
			row += "\t" + localClock(d.Local[name])
		}
		if d.Polar {
			row += "\t(polar: computed for latitude " + strconv.FormatFloat(d.Latitude, 'f', 1, 64) + ")"
		}
		fmt.Fprintln(tw, row)
	}
	return tw.Flush()
}

// localClock is the HH:MM of an RFC 3339 local time, or the text unchanged if
// it is not one.
func localClock(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return s
	}
	return t.Format("15:04")
}
