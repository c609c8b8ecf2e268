// Package timetable reads dated reminder times from CSV: a local time per
// date per location per reminder, such as a year of prayer times.
//
// The format is RFC 4180 CSV with a header row naming the columns, in any
// order:
//
//		location,zone,date,name,local_time
//		jakarta,Asia/Jakarta,2026-03-01,fajr,04:41
//
//	  - location: the location's name (1-100 letters, digits, '_', '.', '-').
//	  - zone: its IANA zone. Optional column; required for a location the app
//	    does not have yet, and must match the zone of one it has.
//	  - date: the local calendar date, YYYY-MM-DD.
//	  - name: the key of a timetable reminder.
//	  - local_time: HH:MM or HH:MM:SS on the location's clock. A time inside a
//	    spring-forward gap fires at the first instant after the gap; a time
//	    that occurs twice at fall-back fires at the first occurrence.
//
// A later row for the same (name, location, date) replaces an earlier one.
// Parse reports every bad row with its line number and keeps none of them,
// so an import is all or nothing.
package timetable

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/chime-dev/chime/localtime"
)

// Row is one timetable entry.
type Row struct {
	Line     int // in the CSV, for error messages
	Location string
	Zone     string // empty if the file has no zone column
	Date     string // YYYY-MM-DD
	Name     string // the reminder's key
	LocalSec int
}

// Key identifies the entry a row sets.
type Key struct{ Name, Location, Date string }

// RowError is a bad row.
type RowError struct {
	Line   int
	Column string
	Msg    string
}

func (e RowError) Error() string { return fmt.Sprintf("line %d: %s: %s", e.Line, e.Column, e.Msg) }

// Errors is every bad row of a file.
type Errors []RowError

func (e Errors) Error() string {
	if len(e) == 1 {
		return e[0].Error()
	}
	return fmt.Sprintf("%s (and %d more)", e[0].Error(), len(e)-1)
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

var columns = []string{"location", "zone", "date", "name", "local_time"}

// Parse reads a timetable. It returns the rows, last one winning per Key, or
// Errors listing up to maxErrors bad rows (0 means all), or another error if
// the file is not CSV at all.
func Parse(r io.Reader, maxErrors int) ([]Row, error) {
	// A byte-order mark (spreadsheet exports write one) must go before the
	// CSV reader sees the header's first quote.
	br := bufio.NewReader(r)
	if b, err := br.Peek(3); err == nil && string(b) == "\ufeff" {
		_, _ = br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.ReuseRecord = true
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, errors.New("the timetable is empty: a header row (location,zone,date,name,local_time) is required")
	}
	if err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		known := false
		for _, c := range columns {
			known = known || c == h
		}
		if !known {
			return nil, fmt.Errorf("header: unknown column %q; the columns are %s", h, strings.Join(columns, ","))
		}
		if _, dup := col[h]; dup {
			return nil, fmt.Errorf("header: column %q appears twice", h)
		}
		col[h] = i
	}
	for _, c := range []string{"location", "date", "name", "local_time"} {
		if _, ok := col[c]; !ok {
			return nil, fmt.Errorf("header: column %q is missing; the columns are %s (zone optional)", c, strings.Join(columns, ","))
		}
	}
	zoneCol, hasZone := col["zone"]
	var rows []Row
	at := map[Key]int{}
	var errs Errors
	zones := map[string]bool{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) || !errors.Is(pe.Err, csv.ErrFieldCount) {
				return nil, fmt.Errorf("not valid CSV: %w", err)
			}
			errs = append(errs, RowError{Line: pe.StartLine, Column: "row", Msg: fmt.Sprintf("has %d fields, the header has %d", len(rec), len(header))})
			if maxErrors > 0 && len(errs) >= maxErrors {
				return nil, errs
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		bad := func(c, msg string) { errs = append(errs, RowError{Line: line, Column: c, Msg: msg}) }
		row := Row{Line: line, Location: strings.TrimSpace(rec[col["location"]]), Date: strings.TrimSpace(rec[col["date"]]),
			Name: strings.TrimSpace(rec[col["name"]])}
		ok := true
		if !namePattern.MatchString(row.Location) {
			bad("location", "must be 1-100 letters, digits, '_', '.' or '-'")
			ok = false
		}
		if !namePattern.MatchString(row.Name) {
			bad("name", "must be a reminder key: 1-100 letters, digits, '_', '.' or '-'")
			ok = false
		}
		if d, err := time.Parse(time.DateOnly, row.Date); err != nil || d.Format(time.DateOnly) != row.Date {
			bad("date", fmt.Sprintf("%q is not a date in the form YYYY-MM-DD", row.Date))
			ok = false
		}
		if sec, err := localtime.Parse(strings.TrimSpace(rec[col["local_time"]])); err != nil {
			bad("local_time", err.Error())
			ok = false
		} else {
			row.LocalSec = int(sec)
		}
		if hasZone {
			row.Zone = strings.TrimSpace(rec[zoneCol])
			if row.Zone != "" && !zones[row.Zone] {
				if _, err := localtime.LoadZone(row.Zone); err != nil {
					bad("zone", err.Error())
					ok = false
				} else {
					zones[row.Zone] = true
				}
			}
		}
		if maxErrors > 0 && len(errs) >= maxErrors {
			return nil, errs[:maxErrors]
		}
		if !ok {
			continue
		}
		k := Key{row.Name, row.Location, row.Date}
		if i, seen := at[k]; seen {
			rows[i] = row
			continue
		}
		at[k] = len(rows)
		rows = append(rows, row)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return rows, nil
}
