package content

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/sender"
)

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// defineBomb is seven levels of {{define}}, each calling the one below ten
// times: 1,223 characters that render to 100 MB.
func defineBomb() string {
	var b strings.Builder
	b.WriteString(`{{define "a"}}` + strings.Repeat("x", 100) + `{{end}}`)
	for c := 'b'; c <= 'g'; c++ {
		fmt.Fprintf(&b, `{{define "%c"}}%s{{end}}`, c, strings.Repeat(fmt.Sprintf(`{{template "%c"}}`, c-1), 10))
	}
	b.WriteString(`{{template "g"}}`)
	return b.String()
}

// Injected: templates that would render to 30 MB and 100 MB. One passes
// Normalize (a {{range}} of 100 items writing a 3,000-byte event field 100
// times each); the other is the {{define}} bomb, parsed straight with
// text/template as Normalize would refuse it. Checked: rendering stops at
// the first write past the device's 4,096 bytes with a *TooLongError, and
// allocates under 1 MB, not the tens of megabytes of the full output.
func TestRenderStopsAtTheLimit(t *testing.T) {
	body := "{{range .Event.a}}" + strings.Repeat("{{$.Event.blob}}", 100) + "{{end}}"
	_, ps := Normalize(Content{Title: "Sale", Body: body}, Rules{})
	require.Empty(t, ps, "a template Normalize accepts")
	data, err := json.Marshal(map[string]any{"a": make([]int, 100), "blob": strings.Repeat("x", 3000)})
	require.NoError(t, err)
	b := &sender.Batch{Message: message.Message{Reminder: "sale", Zone: "UTC", FireAt: time.Now(), Title: "Sale", Body: body, Data: data}}
	p, err := NewComposer(Config{}).Prepare(&b.Message)
	require.NoError(t, err)

	t.Run("composed", func(t *testing.T) {
		var err error
		n := allocated(func() { _, err = p.Compose(Device{UserID: "1", MaxBytes: 4096}) })
		var tooLong *TooLongError
		require.ErrorAs(t, err, &tooLong)
		require.Equal(t, 4096, tooLong.Max)
		require.ErrorContains(t, err, "content: body: message exceeds 4096 bytes")
		require.Less(t, n, uint64(1<<20), "bytes allocated")
	})
	t.Run("define bomb", func(t *testing.T) {
		e := &executable{t: template.Must(template.New("body").Parse(defineBomb()))}
		r := newRender(&Vars{}, 4096)
		var err error
		n := allocated(func() { _, err = e.Execute(r) })
		require.ErrorAs(t, err, new(*TooLongError))
		require.GreaterOrEqual(t, r.left, 0, "never wrote past the limit")
		require.Less(t, n, uint64(1<<20), "bytes allocated")
	})
}

// Injected: templates Normalize accepts whose functions or ranges would do
// unbounded work without writing: a string doubled 24 times through a
// variable (128 MB), thirty copies of a 64 KB event formatted in one call,
// and ranges over more than MaxRange items. Checked: each fails with its
// reason, allocating under 1 MB; the same forms within bounds render.
func TestRenderBoundsWork(t *testing.T) {
	event, err := json.Marshal(map[string]any{
		"big": strings.Repeat("y", 64<<10), "items": make([]int, MaxRange+1), "few": make([]int, MaxRange), "s": strings.Repeat("z", 200),
	})
	require.NoError(t, err)
	tests := []struct {
		name, body, want, err string
	}{
		{"doubling through a variable", `{{$x := "xxxxxxxx"}}` + strings.Repeat(`{{$x = print $x $x}}`, 24) + `{{len $x}}`,
			"", "error calling print: template functions would read and produce more than 262144 bytes"},
		{"doubling within bounds", `{{$x := "xxxxxxxx"}}` + strings.Repeat(`{{$x = print $x $x}}`, 10) + `{{len $x}}`, "8192", ""},
		{"one call over a large event", "{{len (print" + strings.Repeat(" .Event", 30) + ")}}",
			"", "error calling print: template functions would read and produce more than 262144 bytes"},
		{"escaping nested", `{{len (js (js (js (js (js (js (js (js (js (js (js (js (js (js (js (js (js (js .Event.big))))))))))))))))))}}`,
			"", "error calling js: template functions would read and produce more than 262144 bytes"},
		{"range over too many items", "{{range .Event.items}}{{end}}", "", "{{range}} over 101 items: at most 100"},
		{"range over a computed number", "{{range (len .Event.s)}}{{end}}", "", "{{range}} over 200 items: at most 100"},
		{"range within bounds", "{{range .Event.few}}.{{end}}", strings.Repeat(".", MaxRange), ""},
	}
	c := NewComposer(Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ps := Normalize(Content{Title: "Sale", Body: tt.body}, Rules{})
			require.Empty(t, ps, "a template Normalize accepts")
			b := &sender.Batch{Message: message.Message{Reminder: "sale", Zone: "UTC", FireAt: time.Now(), Title: "Sale", Body: tt.body, Data: event}}
			p, err := c.Prepare(&b.Message)
			require.NoError(t, err)
			var m Message
			n := allocated(func() { m, err = p.Compose(Device{UserID: "1"}) })
			require.Less(t, n, uint64(1<<20), "bytes allocated")
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				require.False(t, errors.As(err, new(*TooLongError)))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, m.Body)
		})
	}
}

// A title and body together count against the limit; a constant title
// (no template) counts too, and so does what text processors make of them.
func TestComposeLimitCountsTitleAndBody(t *testing.T) {
	c := NewComposer(Config{})
	b := &sender.Batch{Message: message.Message{Reminder: "sale", Zone: "UTC", FireAt: time.Now(), Title: strings.Repeat("t", 60), Body: "{{.User}}"}}
	m, err := c.Compose(&b.Message, Device{UserID: strings.Repeat("u", 40), MaxBytes: 100})
	require.NoError(t, err)
	require.Len(t, m.Title+m.Body, 100)
	_, err = c.Compose(&b.Message, Device{UserID: strings.Repeat("u", 41), MaxBytes: 100})
	require.ErrorContains(t, err, "content: body: message exceeds 100 bytes")
	_, err = c.Compose(&b.Message, Device{MaxBytes: 50})
	require.ErrorContains(t, err, "content: title: message exceeds 50 bytes")
	// Without a limit of the device's own, the default one.
	_, err = c.Compose(&b.Message, Device{UserID: strings.Repeat("u", DefaultMaxMessage)})
	require.ErrorContains(t, err, fmt.Sprintf("message exceeds %d bytes", DefaultMaxMessage))
}
