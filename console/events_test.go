package console_test

import (
	"html"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
)

// Injects: a topic reminder of app A with two events posted through the
// API, one whose data holds a <script> tag, and app B's editor.
// Checks: the topic's page lists both events newest first with their data
// and occurrences, the tag never markup; app B's editor gets no page of
// app A's topic.
func TestTopicPageListsEvents(t *testing.T) {
	b := setup(t)
	require.Equal(t, 201, b.call(b.keyA, "PUT", "/v1/reminders/flash", "", map[string]any{
		"kind": "topic", "title": "Flash sale", "schema": map[string]any{"type": "object", "properties": map[string]any{"product": map[string]any{"type": "string"}}},
		"locations": []map[string]string{{"location": "paris", "zone": "Europe/Paris"}}}, nil))
	var first, second api.Event
	require.Equal(t, 202, b.call(b.keyA, "POST", "/v1/events", "", map[string]any{"topic": "flash", "data": map[string]any{"product": "shoes"}}, &first))
	require.Equal(t, 202, b.call(b.keyA, "POST", "/v1/events", "", map[string]any{"topic": "flash", "data": map[string]any{"product": "<script>alert(1)</script>"}}, &second))

	c := b.client(t)
	c.signIn("editor@a.example", password)
	res, page := c.do("GET", "/console/reminders/flash", nil)
	require.Equal(t, 200, res.StatusCode, page)
	_, table, ok := strings.Cut(page, `<table id="events">`)
	require.True(t, ok, "the page has the events table")
	table, _, _ = strings.Cut(table, "</table>")
	i1 := strings.Index(table, "<td>"+strconv.FormatInt(first.ID, 10))
	i2 := strings.Index(table, "<td>"+strconv.FormatInt(second.ID, 10))
	require.True(t, i2 >= 0 && i1 > i2, "both events, newest first:\n%s", table)
	require.NotContains(t, table, "<script>")
	// The data is shown as stored: canonical JSON, whose encoder writes <
	// and > as \u003c and \u003e, then escaped for HTML.
	require.Contains(t, html.UnescapeString(table), `{"product":"\u003cscript\u003ealert(1)\u003c/script\u003e"}`)
	require.Contains(t, html.UnescapeString(table), `{"product":"shoes"}`)

	other := b.client(t)
	other.signIn("editor@b.example", password)
	res, page = other.do("GET", "/console/reminders/flash", nil)
	require.Equal(t, 404, res.StatusCode)
	require.NotContains(t, page, "shoes")
}
