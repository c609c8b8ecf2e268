package timetable_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/timetable"
)

func hms(h, m, s int) int { return h*3600 + m*60 + s }

func TestParseGoodFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		csv  string
		want []timetable.Row
	}{
		{
			name: "documented column order",
			csv: "location,zone,date,name,local_time\n" +
				"jakarta,Asia/Jakarta,2026-03-01,fajr,04:41\n" +
				"jakarta,Asia/Jakarta,2026-03-01,isha,19:12\n",
			want: []timetable.Row{
				{Line: 2, Location: "jakarta", Zone: "Asia/Jakarta", Date: "2026-03-01", Name: "fajr", LocalSec: hms(4, 41, 0)},
				{Line: 3, Location: "jakarta", Zone: "Asia/Jakarta", Date: "2026-03-01", Name: "isha", LocalSec: hms(19, 12, 0)},
			},
		},
		{
			name: "columns in another order",
			csv: "local_time,name,date,zone,location\n" +
				"04:41,fajr,2026-03-01,Asia/Jakarta,jakarta\n",
			want: []timetable.Row{
				{Line: 2, Location: "jakarta", Zone: "Asia/Jakarta", Date: "2026-03-01", Name: "fajr", LocalSec: hms(4, 41, 0)},
			},
		},
		{
			name: "no zone column",
			csv: "date,location,name,local_time\n" +
				"2026-03-01,riyadh,fajr,04:55\n",
			want: []timetable.Row{
				{Line: 2, Location: "riyadh", Date: "2026-03-01", Name: "fajr", LocalSec: hms(4, 55, 0)},
			},
		},
		{
			name: "empty zone in a zone column (a location the app has)",
			csv: "location,zone,date,name,local_time\n" +
				"riyadh,,2026-03-01,fajr,04:55\n",
			want: []timetable.Row{
				{Line: 2, Location: "riyadh", Date: "2026-03-01", Name: "fajr", LocalSec: hms(4, 55, 0)},
			},
		},
		{
			name: "byte-order mark, CRLF, header in capitals with spaces",
			csv: "\ufeffLocation, Zone ,DATE,Name,Local_Time\r\n" +
				"london,Europe/London,2026-03-29,fajr,05:08\r\n" +
				"london,Europe/London,2026-03-29,isha,21:04\r\n",
			want: []timetable.Row{
				{Line: 2, Location: "london", Zone: "Europe/London", Date: "2026-03-29", Name: "fajr", LocalSec: hms(5, 8, 0)},
				{Line: 3, Location: "london", Zone: "Europe/London", Date: "2026-03-29", Name: "isha", LocalSec: hms(21, 4, 0)},
			},
		},
		{
			name: "HH:MM and HH:MM:SS, midnight and the last second",
			csv: "location,date,name,local_time\n" +
				"x,2026-01-01,a,00:00\n" +
				"x,2026-01-02,a,23:59:59\n" +
				"x,2026-01-03,a,12:34:56\n",
			want: []timetable.Row{
				{Line: 2, Location: "x", Date: "2026-01-01", Name: "a", LocalSec: 0},
				{Line: 3, Location: "x", Date: "2026-01-02", Name: "a", LocalSec: hms(23, 59, 59)},
				{Line: 4, Location: "x", Date: "2026-01-03", Name: "a", LocalSec: hms(12, 34, 56)},
			},
		},
		{
			name: "a later row for the same key replaces the earlier one in place",
			csv: "location,zone,date,name,local_time\n" +
				"jakarta,Asia/Jakarta,2026-03-01,fajr,04:41\n" +
				"jakarta,Asia/Jakarta,2026-03-01,isha,19:12\n" +
				"jakarta,Asia/Jakarta,2026-03-01,fajr,04:43:30\n",
			want: []timetable.Row{
				{Line: 4, Location: "jakarta", Zone: "Asia/Jakarta", Date: "2026-03-01", Name: "fajr", LocalSec: hms(4, 43, 30)},
				{Line: 3, Location: "jakarta", Zone: "Asia/Jakarta", Date: "2026-03-01", Name: "isha", LocalSec: hms(19, 12, 0)},
			},
		},
		{
			name: "same name and date at another location, or another date, are separate rows",
			csv: "location,zone,date,name,local_time\n" +
				"a,UTC,2026-03-01,fajr,04:00\n" +
				"b,UTC,2026-03-01,fajr,04:00\n" +
				"a,UTC,2026-03-02,fajr,04:00\n",
			want: []timetable.Row{
				{Line: 2, Location: "a", Zone: "UTC", Date: "2026-03-01", Name: "fajr", LocalSec: hms(4, 0, 0)},
				{Line: 3, Location: "b", Zone: "UTC", Date: "2026-03-01", Name: "fajr", LocalSec: hms(4, 0, 0)},
				{Line: 4, Location: "a", Zone: "UTC", Date: "2026-03-02", Name: "fajr", LocalSec: hms(4, 0, 0)},
			},
		},
		{
			name: "quoted fields, spaces around values, names with '.', '_' and '-'",
			csv: "location,zone,date,name,local_time\n" +
				"\"new-york.east_1\", America/New_York ,\"2026-11-01\",\"fajr.v2\", 01:30\n",
			want: []timetable.Row{
				{Line: 2, Location: "new-york.east_1", Zone: "America/New_York", Date: "2026-11-01", Name: "fajr.v2", LocalSec: hms(1, 30, 0)},
			},
		},
		{
			name: "a quoted field over two lines: the row keeps the line it starts on",
			csv: "location,zone,date,name,local_time\n" +
				"a,UTC,2026-03-01,fajr,04:00\n" +
				"b,UTC,\"2026-03-01\n\",isha,20:00\n" +
				"c,UTC,2026-03-01,fajr,04:00\n",
			want: []timetable.Row{
				{Line: 2, Location: "a", Zone: "UTC", Date: "2026-03-01", Name: "fajr", LocalSec: hms(4, 0, 0)},
				{Line: 3, Location: "b", Zone: "UTC", Date: "2026-03-01", Name: "isha", LocalSec: hms(20, 0, 0)},
				{Line: 5, Location: "c", Zone: "UTC", Date: "2026-03-01", Name: "fajr", LocalSec: hms(4, 0, 0)},
			},
		},
		{
			name: "leap day",
			csv:  "location,date,name,local_time\nx,2028-02-29,a,05:00\n",
			want: []timetable.Row{{Line: 2, Location: "x", Date: "2028-02-29", Name: "a", LocalSec: hms(5, 0, 0)}},
		},
		{
			name: "a header and no rows",
			csv:  "location,zone,date,name,local_time\n",
			want: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := timetable.Parse(strings.NewReader(tc.csv), 0)
			require.NoError(t, err)
			require.Equal(t, tc.want, rows)
		})
	}
}

// The sample under testdata is a valid timetable: 70 rows of five prayers
// for three cities, with distinct keys.
func TestParseSample(t *testing.T) {
	f, err := os.Open("../testdata/timetable/prayer-sample.csv")
	require.NoError(t, err)
	defer f.Close()
	rows, err := timetable.Parse(f, 0)
	require.NoError(t, err)
	require.Len(t, rows, 70)
	names, places := map[string]int{}, map[string]string{}
	for _, r := range rows {
		names[r.Name]++
		places[r.Location] = r.Zone
	}
	require.Equal(t, map[string]int{"fajr": 14, "dhuhr": 14, "asr": 14, "maghrib": 14, "isha": 14}, names)
	require.Equal(t, map[string]string{"jakarta": "Asia/Jakarta", "riyadh": "Asia/Riyadh", "london": "Europe/London"}, places)
}

// A byte-order mark before a quoted header (a spreadsheet export that
// quotes every field) is a valid UTF-8 CSV file like one with a bare header.
func TestParseBOMBeforeQuotedHeader(t *testing.T) {
	csv := "\ufeff\"location\",\"zone\",\"date\",\"name\",\"local_time\"\r\n" +
		"\"jakarta\",\"Asia/Jakarta\",\"2026-03-01\",\"fajr\",\"04:41\"\r\n"
	rows, err := timetable.Parse(strings.NewReader(csv), 0)
	require.NoError(t, err)
	require.Equal(t, []timetable.Row{{Line: 2, Location: "jakarta", Zone: "Asia/Jakarta", Date: "2026-03-01", Name: "fajr", LocalSec: hms(4, 41, 0)}}, rows)
}

func TestParseBadHeaders(t *testing.T) {
	for _, tc := range []struct {
		name, csv string
		mention   []string
	}{
		{"empty file", "", []string{"empty", "header"}},
		{"missing local_time", "location,zone,date,name\nx,UTC,2026-03-01,a\n", []string{`"local_time" is missing`}},
		{"missing location", "zone,date,name,local_time\nUTC,2026-03-01,a,05:00\n", []string{`"location" is missing`}},
		{"missing name", "location,date,local_time\nx,2026-03-01,05:00\n", []string{`"name" is missing`}},
		{"missing date", "location,name,local_time\nx,a,05:00\n", []string{`"date" is missing`}},
		{"unknown column", "location,zone,date,name,time\nx,UTC,2026-03-01,a,05:00\n", []string{`unknown column "time"`, "location,zone,date,name,local_time"}},
		{"an empty column name", "location,zone,date,name,local_time,\nx,UTC,2026-03-01,a,05:00,\n", []string{`unknown column ""`}},
		{"duplicate column", "location,date,name,local_time,date\nx,2026-03-01,a,05:00,2026-03-02\n", []string{`"date" appears twice`}},
		{"duplicate column in another case", "location,date,name,local_time,Local_Time\nx,2026-03-01,a,05:00,06:00\n", []string{`"local_time" appears twice`}},
		{"data instead of a header", "jakarta,Asia/Jakarta,2026-03-01,fajr,04:41\n", []string{`unknown column "jakarta"`}},
		{"not CSV: a bare quote", "location,zone,date,name,local_time\nx,UTC,2026-03-01,a\"b,05:00\n", []string{"not valid CSV"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := timetable.Parse(strings.NewReader(tc.csv), 0)
			require.Error(t, err)
			require.Nil(t, rows)
			var rowErrs timetable.Errors
			require.False(t, errors.As(err, &rowErrs), "a header problem is not a row error: %v", err)
			for _, m := range tc.mention {
				require.Contains(t, err.Error(), m)
			}
		})
	}
}

func TestParseBadRows(t *testing.T) {
	const header = "location,zone,date,name,local_time\n"
	const good = "jakarta,Asia/Jakarta,2026-03-01,fajr,04:41\n"
	for _, tc := range []struct {
		name string
		csv  string
		// want lists the errors by line, column and a part of the message.
		want []string
	}{
		{"date 2026-02-30", header + good + "jakarta,Asia/Jakarta,2026-02-30,fajr,04:41\n",
			[]string{`3 date "2026-02-30" is not a date`}},
		{"date 2027-02-29 (not a leap year)", header + "x,UTC,2027-02-29,a,04:41\n",
			[]string{`2 date "2027-02-29"`}},
		{"date without leading zeros", header + good + good + "x,UTC,2026-3-1,a,04:41\n",
			[]string{`4 date "2026-3-1"`}},
		{"date day first", header + "x,UTC,01/03/2026,a,04:41\n",
			[]string{`2 date "01/03/2026"`}},
		{"empty date", header + "x,UTC,,a,04:41\n", []string{`2 date ""`}},
		{"time 24:00", header + "x,UTC,2026-03-01,a,24:00\n", []string{"2 local_time HH:MM"}},
		{"time 12:60", header + "x,UTC,2026-03-01,a,12:60\n", []string{"2 local_time HH:MM"}},
		{"time 12:00:60", header + "x,UTC,2026-03-01,a,12:00:60\n", []string{"2 local_time HH:MM"}},
		{"time 4:41", header + "x,UTC,2026-03-01,a,4:41\n", []string{"2 local_time HH:MM"}},
		{"time with am/pm", header + "x,UTC,2026-03-01,a,04:41 AM\n", []string{"2 local_time HH:MM"}},
		{"empty time", header + "x,UTC,2026-03-01,a,\n", []string{"2 local_time HH:MM"}},
		{"unknown zone", header + "x,Mars/Olympus,2026-03-01,a,05:00\n", []string{`2 zone "Mars/Olympus" is not a known IANA time zone`}},
		{"zone Local", header + "x,Local,2026-03-01,a,05:00\n", []string{`2 zone "Local"`}},
		{"zone abbreviation", header + "x,WIB,2026-03-01,a,05:00\n", []string{`2 zone "WIB"`}},
		{"location with a space", header + "new york,America/New_York,2026-03-01,a,05:00\n", []string{"2 location must be 1-100"}},
		{"location starting with a dot", header + ".x,UTC,2026-03-01,a,05:00\n", []string{"2 location must be 1-100"}},
		{"location of 101 characters", header + strings.Repeat("l", 101) + ",UTC,2026-03-01,a,05:00\n", []string{"2 location must be 1-100"}},
		{"empty location", header + ",UTC,2026-03-01,a,05:00\n", []string{"2 location must be 1-100"}},
		{"name with a slash", header + "x,UTC,2026-03-01,fajr/1,05:00\n", []string{"2 name must be a reminder key"}},
		{"empty name", header + "x,UTC,2026-03-01,,05:00\n", []string{"2 name must be a reminder key"}},
		{"too few fields", header + good + "x,UTC,2026-03-01,a\n", []string{"3 row has 4 fields, the header has 5"}},
		{"too many fields", header + "x,UTC,2026-03-01,a,05:00,extra\n", []string{"2 row has 6 fields, the header has 5"}},
		{"every column of one row bad, in column order", header + "x y,Nowhere/Zone,2026-13-01,a b,25:00\n",
			[]string{"2 location", "2 name", "2 date", "2 local_time", "2 zone"}},
		{"bad rows among good ones keep their own lines", header + good + "x,UTC,2026-02-30,a,05:00\n" + good + "y,UTC,2026-03-01,b,5am\n" + good,
			[]string{"3 date", "5 local_time"}},
		{"line numbers count CRLF lines and a multi-line field", strings.ReplaceAll(header+good, "\n", "\r\n") +
			"x,UTC,\"2026-03-01\",\"a\nb\",05:00\r\n" + "x,UTC,2026-03-01,a,05:00\r\n" + "x,UTC,2026-03-01,a,29:00\r\n",
			[]string{"3 name", "6 local_time"}},
		{"a later good row does not excuse an earlier bad one", header + "x,UTC,2026-03-01,a,29:00\n" + "x,UTC,2026-03-01,a,05:00\n",
			[]string{"2 local_time"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := timetable.Parse(strings.NewReader(tc.csv), 0)
			require.Nil(t, rows, "no rows are returned when any is bad")
			var errs timetable.Errors
			require.ErrorAs(t, err, &errs)
			var got []string
			for _, e := range errs {
				got = append(got, fmt.Sprintf("%d %s %s", e.Line, e.Column, e.Msg))
			}
			require.Len(t, got, len(tc.want), "errors: %q", got)
			for i, w := range tc.want {
				// "LINE COLUMN" must match exactly, the rest is part of the message.
				f := strings.SplitN(w, " ", 3)
				require.True(t, strings.HasPrefix(got[i], f[0]+" "+f[1]+" "), "error %d is %q, want %q", i, got[i], w)
				if len(f) == 3 {
					require.Contains(t, got[i], f[2], "error %d", i)
				}
			}
			// The error text names the first bad line and how many more there are.
			require.Contains(t, err.Error(), fmt.Sprintf("line %d: %s:", errs[0].Line, errs[0].Column))
			if len(errs) > 1 {
				require.Contains(t, err.Error(), fmt.Sprintf("(and %d more)", len(errs)-1))
			}
		})
	}
}

// maxErrors caps the list: a file of bad rows stops at maxErrors, from
// whichever kind of bad row hits the cap; 0 lists them all.
func TestParseMaxErrors(t *testing.T) {
	var badTimes, badFields strings.Builder
	badTimes.WriteString("location,zone,date,name,local_time\n")
	badFields.WriteString("location,zone,date,name,local_time\n")
	for i := range 50 {
		fmt.Fprintf(&badTimes, "loc%d,UTC,2026-03-01,a,99:%02d\n", i, i)
		fmt.Fprintf(&badFields, "loc%d,UTC,2026-03-01,a\n", i)
	}
	// A row with five bad columns when the cap is three.
	fiveBad := "location,zone,date,name,local_time\nx y,Nowhere/Zone,2026-13-01,a b,25:00\nz,UTC,2026-13-01,a,05:00\n"
	for _, tc := range []struct {
		name      string
		csv       string
		maxErrors int
		wantLines []int
	}{
		{"bad times, cap 20", badTimes.String(), 20, seq(2, 21)},
		{"bad times, cap 1", badTimes.String(), 1, []int{2}},
		{"bad times, no cap", badTimes.String(), 0, seq(2, 51)},
		{"wrong field counts, cap 20", badFields.String(), 20, seq(2, 21)},
		{"wrong field counts, no cap", badFields.String(), 0, seq(2, 51)},
		{"several errors in one row, cap 3", fiveBad, 3, []int{2, 2, 2}},
		{"several errors in one row, no cap", fiveBad, 0, []int{2, 2, 2, 2, 2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := timetable.Parse(strings.NewReader(tc.csv), tc.maxErrors)
			require.Nil(t, rows)
			var errs timetable.Errors
			require.ErrorAs(t, err, &errs)
			lines := make([]int, len(errs))
			for i, e := range errs {
				lines[i] = e.Line
			}
			require.Equal(t, tc.wantLines, lines)
		})
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestRowErrorText(t *testing.T) {
	e := timetable.RowError{Line: 7, Column: "date", Msg: `"2026-02-30" is not a date in the form YYYY-MM-DD`}
	require.Equal(t, `line 7: date: "2026-02-30" is not a date in the form YYYY-MM-DD`, e.Error())
	require.Equal(t, e.Error(), timetable.Errors{e}.Error())
	require.Equal(t, e.Error()+" (and 2 more)", timetable.Errors{e, e, e}.Error())
}
