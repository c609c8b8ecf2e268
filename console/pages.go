package console

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/store"
)

type liveData struct {
	O        api.Occurrence
	Local    string
	UTC      string
	Done     bool
	Channels []api.ChannelCounts
	Failures []api.DeliveryFailure
}

func (c *Console) liveOf(r *http.Request, s *session) (*liveData, error) {
	id := r.PathValue("id")
	if _, err := strconv.ParseInt(id, 10, 64); err != nil {
		return nil, &api.Problem{Status: http.StatusNotFound, Detail: "no such occurrence"}
	}
	d := &liveData{}
	if err := c.call(r, s, http.MethodGet, "/v1/occurrences/"+id, "", nil, &d.O); err != nil {
		return nil, err
	}
	if loc, err := localtime.LoadZone(d.O.Zone); err == nil {
		d.Local = localLine(d.O.FireAt, loc)
	}
	d.UTC = d.O.FireAt.UTC().Format(utcLayout)
	d.Done = d.O.State != store.OccScheduled && d.O.State != store.OccFiring
	var ch struct {
		Channels *[]api.ChannelCounts `json:"channels"`
	}
	ch.Channels = &d.Channels
	if err := c.call(r, s, http.MethodGet, "/v1/occurrences/"+id+"/channels", "", nil, &ch); err != nil {
		return nil, err
	}
	var f struct {
		Failures *[]api.DeliveryFailure `json:"failures"`
	}
	f.Failures = &d.Failures
	if err := c.call(r, s, http.MethodGet, "/v1/occurrences/"+id+"/failures?limit=20", "", nil, &f); err != nil {
		return nil, err
	}
	return d, nil
}

// occurrence is the live view of one fire; its script polls occurrenceLive
// until the occurrence is done.
func (c *Console) occurrence(w http.ResponseWriter, r *http.Request, s *session) error {
	d, err := c.liveOf(r, s)
	if err != nil {
		return err
	}
	c.render(w, http.StatusOK, "occurrence", page{Title: fmt.Sprintf("Occurrence %d", d.O.ID), Nav: "reminders", S: s, Data: d})
	return nil
}

// occurrenceLive is the live view's fragment.
func (c *Console) occurrenceLive(w http.ResponseWriter, r *http.Request, s *session) error {
	d, err := c.liveOf(r, s)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	return c.pages.ExecuteTemplate(w, "live", d)
}

type csvLine struct {
	Line   int
	Cells  []string
	Errors []string
}

type importData struct {
	CSV     string
	Lines   []csvLine
	Other   []string
	Checked bool // checked without problems: it can be committed
	Rows    int
	Done    string
}

func (c *Console) importPage(w http.ResponseWriter, r *http.Request, s *session) error {
	c.render(w, http.StatusOK, "import", page{Title: "Import a timetable", Nav: "import", S: s, Data: importData{}})
	return nil
}

var lineField = regexp.MustCompile(`^line (\d+): ?(.*)$`)

// importCSV checks an uploaded (or pasted) timetable with the API's dry run
// and shows every row with its problems; "commit" imports it, all rows or
// none.
func (c *Console) importCSV(w http.ResponseWriter, r *http.Request, s *session) error {
	d := importData{CSV: r.PostFormValue("csv")}
	if file, _, err := r.FormFile("file"); err == nil {
		raw, err := io.ReadAll(io.LimitReader(file, maxForm))
		file.Close()
		if err != nil {
			return err
		}
		if len(raw) > 0 {
			d.CSV = string(raw)
		}
	}
	d.CSV = strings.ReplaceAll(d.CSV, "\r\n", "\n")
	commit := r.PostFormValue("action") == "commit"
	if commit && !s.Editor() {
		c.fail(w, r, s, http.StatusForbidden, "Your role is viewer: you can check a timetable but not import it.")
		return nil
	}
	path := "/v1/timetable?dry_run=true"
	if commit {
		path = "/v1/timetable"
	}
	var res struct {
		Rows int `json:"rows"`
	}
	err := c.call(r, s, http.MethodPost, path, "text/csv", strings.NewReader(d.CSV), &res)
	var p *api.Problem
	byLine := map[int][]string{}
	switch {
	case errors.As(err, &p) && p.Status < 500:
		if len(p.Errors) == 0 {
			d.Other = append(d.Other, p.Detail)
		}
		for _, e := range p.Errors {
			if m := lineField.FindStringSubmatch(e.Field); m != nil {
				n, _ := strconv.Atoi(m[1])
				byLine[n] = append(byLine[n], strings.TrimSpace(m[2]+": "+e.Message))
			} else {
				d.Other = append(d.Other, e.Field+": "+e.Message)
			}
		}
	case err != nil:
		return err
	case commit:
		d = importData{Done: fmt.Sprintf("Imported %d rows.", res.Rows)}
	default:
		d.Checked, d.Rows = true, res.Rows
	}
	if d.Done == "" {
		cr := csv.NewReader(bytes.NewReader([]byte(d.CSV)))
		cr.FieldsPerRecord, cr.LazyQuotes = -1, true
		for n := 1; n <= 10000; n++ {
			rec, err := cr.Read()
			if err != nil {
				break
			}
			line, _ := cr.FieldPos(0)
			d.Lines = append(d.Lines, csvLine{Line: line, Cells: rec, Errors: byLine[line]})
			delete(byLine, line)
		}
		for n, errs := range byLine {
			d.Other = append(d.Other, fmt.Sprintf("line %d: %s", n, strings.Join(errs, "; ")))
		}
	}
	status := http.StatusOK
	if p != nil {
		status = http.StatusUnprocessableEntity
	}
	c.render(w, status, "import", page{Title: "Import a timetable", Nav: "import", S: s, Data: d})
	return nil
}

func (c *Console) locations(w http.ResponseWriter, r *http.Request, s *session) error {
	after := r.URL.Query().Get("after")
	locs, err := store.LocationSummaries(r.Context(), c.db, s.App.ID, after, PageSize)
	if err != nil {
		return err
	}
	d := struct {
		Locs  []store.LocationSummary
		Next  string
		After string
	}{Locs: locs, After: after}
	if len(locs) == PageSize {
		d.Next = locs[len(locs)-1].Name
	}
	c.render(w, http.StatusOK, "locations", page{Title: "Locations", Nav: "locations", S: s, Data: d})
	return nil
}

func (c *Console) audit(w http.ResponseWriter, r *http.Request, s *session) error {
	var out struct {
		Entries []api.AuditEntry `json:"entries"`
		Next    string           `json:"next"`
	}
	path := "/v1/audit?limit=" + strconv.Itoa(PageSize)
	if b := r.URL.Query().Get("before"); b != "" {
		path += "&before=" + url.QueryEscape(b)
	}
	if err := c.call(r, s, http.MethodGet, path, "", nil, &out); err != nil {
		return err
	}
	c.render(w, http.StatusOK, "audit", page{Title: "Audit log", Nav: "audit", S: s, Data: out})
	return nil
}
