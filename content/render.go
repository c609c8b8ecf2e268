package content

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"text/template"
)

// Limits on rendering. Normalize refuses what would multiply a template's
// work (templates calling templates, a {{range}} inside another, wide
// printf padding, methods fed with computed values), so that what remains
// is bounded by these: a message stops rendering at the first write past
// its device's limit, each {{range}} goes over at most MaxRange items, and
// the functions that build strings share one budget per message.
const (
	// DefaultMaxMessage is the most bytes a message's title and body take
	// together when the device states no limit (Device.MaxBytes): APNs and
	// FCM both refuse payloads over 4 KB.
	DefaultMaxMessage = 4096
	// MaxRange bounds the items one {{range}} goes over.
	MaxRange = 100
	// MaxFormatWidth bounds the width and the precision of printf's verbs.
	MaxFormatWidth = 64
	// MaxWork bounds the bytes that print, printf, println, html, js,
	// urlquery, upper and lower read and produce, all their calls in one
	// message together: far beyond what a message shows, far below what
	// would cost a device more than a fraction of a millisecond.
	MaxWork = 256 << 10
)

// TooLongError is a message whose title and body together render to more
// bytes than its device takes. Rendering stops at the first write past the
// limit.
type TooLongError struct{ Max int }

func (e *TooLongError) Error() string { return fmt.Sprintf("message exceeds %d bytes", e.Max) }

// ErrTooMuchWork is a message whose template functions would read and
// produce more than MaxWork bytes.
var ErrTooMuchWork = fmt.Errorf("template functions would read and produce more than %d bytes", MaxWork)

// render is the rendering of one message: go-i18n hands it to
// executable.Execute as the template data.
type render struct {
	vars *Vars
	max  int // the message's limit
	left int // bytes the message may still take
	work int // bytes its functions may still read and produce
}

func newRender(v *Vars, max int) *render {
	return &render{vars: v, max: max, left: max, work: MaxWork}
}

func (r *render) charge(n int) error {
	if n > r.work {
		r.work = 0
		return ErrTooMuchWork
	}
	r.work -= n
	return nil
}

// call runs f, charging the size of its arguments first (so that a call
// that would read too much does not start) and then its result.
func (r *render) call(f func(...any) string, extra int, args []any) (string, error) {
	n := extra
	for _, a := range args {
		if n += size(a, r.work-n); n > r.work {
			break
		}
	}
	if err := r.charge(n); err != nil {
		return "", err
	}
	s := f(args...)
	return s, r.charge(len(s))
}

// size estimates the bytes v prints as, looking no further than limit.
func size(v any, limit int) int {
	switch v := v.(type) {
	case string:
		return len(v)
	case json.Number:
		return len(v)
	case map[string]any:
		n := len("map[]")
		for k, x := range v {
			if n > limit {
				break
			}
			n += len(k) + 2 + size(x, limit-n)
		}
		return n
	case []any:
		n := len("[]")
		for _, x := range v {
			if n > limit {
				break
			}
			n += 1 + size(x, limit-n)
		}
		return n
	}
	return 32
}

// output is what a template renders into: it refuses the first write that
// would take the message past its limit, which stops the execution there.
type output struct {
	b strings.Builder
	r *render
}

func (w *output) Write(p []byte) (int, error) {
	if len(p) > w.r.left {
		return 0, &TooLongError{Max: w.r.max}
	}
	w.r.left -= len(p)
	return w.b.Write(p)
}

// executable is a checked template that runs many times at once. Each run
// takes an instance: a clone (sharing the parse tree) whose string
// functions charge that run's budget.
type executable struct {
	t    *template.Template
	pool sync.Pool // of *instance
}

type instance struct {
	t *template.Template
	r *render
}

func (e *executable) Execute(data any) (string, error) {
	r, ok := data.(*render)
	if !ok {
		return "", fmt.Errorf("content: template data is %T, not a rendering", data)
	}
	in, err := e.instance()
	if err != nil {
		return "", err
	}
	in.r = r
	defer func() {
		in.r = nil
		e.pool.Put(in)
	}()
	w := output{r: r}
	if err := in.t.Execute(&w, r.vars); err != nil {
		return "", err
	}
	return w.b.String(), nil
}

func (e *executable) instance() (*instance, error) {
	if in, ok := e.pool.Get().(*instance); ok {
		return in, nil
	}
	t, err := e.t.Clone()
	if err != nil {
		return nil, fmt.Errorf("content: clone template: %w", err)
	}
	in := &instance{t: t}
	t.Funcs(in.funcs())
	return in, nil
}

// funcs are the functions that build strings, text/template's own and
// ours, each charging the instance's current run.
func (in *instance) funcs() template.FuncMap {
	charged := func(f func(...any) string) func(...any) (string, error) {
		return func(args ...any) (string, error) { return in.r.call(f, 0, args) }
	}
	oneString := func(f func(string) string) func(string) (string, error) {
		return func(s string) (string, error) {
			return in.r.call(func(...any) string { return f(s) }, len(s), nil)
		}
	}
	return template.FuncMap{
		"print":    charged(fmt.Sprint),
		"println":  charged(fmt.Sprintln),
		"html":     charged(template.HTMLEscaper),
		"js":       charged(template.JSEscaper),
		"urlquery": charged(template.URLQueryEscaper),
		"printf": func(format string, args ...any) (string, error) {
			return in.r.call(func(args ...any) string { return fmt.Sprintf(format, args...) }, len(format), args)
		},
		"upper": oneString(strings.ToUpper),
		"lower": oneString(strings.ToLower),
		"title": oneString(title),
	}
}

// limitRange passes on what a {{range}} goes over, unless it has more than
// MaxRange items (boundRanges puts it in every range's pipeline).
func limitRange(v any) (any, error) {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		rv = rv.Elem()
	}
	var n int64
	switch rv.Kind() {
	case reflect.Array, reflect.Slice, reflect.Map:
		n = int64(rv.Len())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n = rv.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n = int64(min(rv.Uint(), MaxRange+1))
	case reflect.Func, reflect.Chan:
		return nil, errors.New("{{range}} over a function or channel is not allowed")
	}
	if n > MaxRange {
		return nil, fmt.Errorf("{{range}} over %d items: at most %d", n, MaxRange)
	}
	return v, nil
}
