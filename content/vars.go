package content

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
	"unicode"
	"unicode/utf8"
)

// Vars are the variables of a reminder's templates.
type Vars struct {
	// Reminder is the reminder's key.
	Reminder string
	// Title is the rendered title; empty (and refused) in the title itself.
	Title string
	// Location and Zone are the location's name and IANA zone.
	Location string
	Zone     string
	// FireAt is the fire instant in the location's zone, for layouts of
	// one's own: {{.FireAt.Format "Mon 15:04"}}.
	FireAt time.Time
	// LocalTime ("15:04") and LocalDate ("2006-01-02") are FireAt at the
	// location.
	LocalTime string
	LocalDate string
	// User is the user ID and Platform the device's platform.
	User     string
	Platform string
	// Lang is the language the message is written in (a BCP 47 tag).
	Lang string
	// Prayer is the prayer a prayer reminder fires for ("fajr", "maghrib",
	// ...; package prayer's names), empty for the other kinds:
	// {{.Prayer | title}} in 10 minutes.
	Prayer string
	// Event is the JSON object of the event that fired the reminder; nil
	// for timed reminders. Its missing fields are errors; use get for
	// optional ones.
	Event map[string]any
}

// funcs are the functions templates may call besides text/template's own.
var funcs = template.FuncMap{
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
	"title": title,
	"get":   get,
}

// title writes a name the way a sentence starts: its first letter upper
// case and underscores as spaces ("last_third_of_night" is "Last third of
// night").
func title(s string) string {
	s = strings.ReplaceAll(s, "_", " ")
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// get returns m[key], or def (or "") when m has no such key: the way to
// read an optional event field.
func get(m map[string]any, key string, def ...any) any {
	if v, ok := m[key]; ok && v != nil {
		return v
	}
	if len(def) > 0 {
		return def[0]
	}
	return ""
}

// varNames are the names of Vars' fields.
var varNames = func() []string {
	t := reflect.TypeFor[Vars]()
	names := make([]string, t.NumField())
	for i := range names {
		names[i] = t.Field(i).Name
	}
	return names
}()

// reserved are names a placeholder may not take: template keywords and
// functions.
func reserved(name string) bool {
	switch name {
	case "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue", "nil",
		"and", "or", "not", "len", "index", "slice", "print", "printf", "println", "html", "js", "urlquery",
		"call", "eq", "ne", "lt", "le", "gt", "ge":
		return true
	}
	_, ok := funcs[name]
	return ok
}

// parseText parses one template of a reminder (field "title" or "body"),
// checks that it names only known variables and keeps to the rules that
// bound its cost (see check), and returns the event fields it reads
// directly ({{.Event.price}} reads "price"). Each {{range}} of the template
// returned is bounded to MaxRange items.
func parseText(field, src string) (*template.Template, []string, error) {
	t, err := template.New(field).Option("missingkey=error").Funcs(funcs).Parse(src)
	if err != nil {
		return nil, nil, err
	}
	for _, tt := range t.Templates() {
		if tt.Name() != field {
			// A template calling others is how a short text renders to
			// gigabytes: each level multiplies the one below.
			return nil, nil, fmt.Errorf("template: %s: {{define}} and {{block}} are not allowed: a title or body is one template", field)
		}
	}
	if t.Tree == nil {
		return t, nil, nil
	}
	c := checker{title: field == "title", dot: true}
	c.node(t.Tree.Root)
	if c.err != nil {
		return nil, nil, fmt.Errorf("template: %s: %w", field, c.err)
	}
	boundRanges(t.Tree, t.Tree.Root)
	t.Funcs(template.FuncMap{rangeFunc: limitRange})
	events := c.events
	slices.Sort(events)
	return t, slices.Compact(events), nil
}

// checker walks a parse tree, refuses variables Vars does not have, and
// collects the event fields read directly. It also refuses what would let
// a short template do unbounded work: calling other templates, a {{range}}
// inside another, printf formats that are not constant or pad beyond
// MaxFormatWidth, and methods (.FireAt.Format) given anything but
// constants, since their results could be fed back into them without end.
type checker struct {
	title   bool // the title may not use .Title
	dot     bool // dot is the Vars (false inside range and with)
	inRange bool
	events  []string
	err     error
}

func (c *checker) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf(format, args...)
	}
}

func (c *checker) fields(idents []string) {
	c.field(idents[0])
	if idents[0] == "Event" && len(idents) > 1 {
		c.events = append(c.events, idents[1])
	}
}

func (c *checker) field(name string) {
	if !slices.Contains(varNames, name) {
		c.fail("unknown variable .%s (known: .%s)", name, strings.Join(varNames, ", ."))
	} else if c.title && name == "Title" {
		c.fail(".Title is the rendered title and can only be used in the body")
	}
}

func (c *checker) node(n parse.Node) {
	if c.err != nil {
		return
	}
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, x := range n.Nodes {
			c.node(x)
		}
	case *parse.ActionNode:
		c.node(n.Pipe)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for i, cmd := range n.Cmds {
			c.command(cmd, i > 0)
			for _, a := range cmd.Args {
				c.node(a)
			}
		}
	case *parse.FieldNode:
		if c.dot {
			c.fields(n.Ident)
		}
	case *parse.VariableNode:
		if len(n.Ident) > 1 && n.Ident[0] == "$" {
			c.fields(n.Ident[1:])
		}
	case *parse.ChainNode:
		c.node(n.Node)
	case *parse.IfNode:
		c.node(n.Pipe)
		c.node(n.List)
		c.node(n.ElseList)
	case *parse.RangeNode:
		if c.inRange {
			c.fail("{{range}} inside {{range}} is not allowed")
			return
		}
		if k, ok := constantCount(n.Pipe); ok && k > MaxRange {
			c.fail("{{range %d}}: at most %d items", k, MaxRange)
			return
		}
		// The body is what repeats; the else runs once.
		c.node(n.Pipe)
		saved := c.dot
		c.dot, c.inRange = false, true
		c.node(n.List)
		c.dot, c.inRange = saved, false
		c.node(n.ElseList)
	case *parse.WithNode:
		c.branch(&n.BranchNode)
	case *parse.TemplateNode:
		c.fail("{{template %q}} is not allowed: a title or body is one template", n.Name)
	}
}

// command checks a command of a pipeline; piped tells whether it is given
// the value of the commands before it.
func (c *checker) command(cmd *parse.CommandNode, piped bool) {
	switch head := cmd.Args[0].(type) {
	case *parse.IdentifierNode:
		if head.Ident != "printf" {
			return
		}
		format, ok := argAt(cmd, 1).(*parse.StringNode)
		if !ok {
			c.fail("printf takes a quoted format string first")
			return
		}
		if err := checkFormat(format.Text); err != nil {
			c.fail("printf %s: %v", format.Quoted, err)
		}
	case *parse.FieldNode, *parse.ChainNode, *parse.VariableNode:
		// A command that starts with a field and has arguments, or is
		// piped into, calls a method.
		if piped {
			c.fail("%s cannot be given a pipeline's value: only functions can follow |", head)
			return
		}
		for _, a := range cmd.Args[1:] {
			switch a.(type) {
			case *parse.StringNode, *parse.NumberNode, *parse.BoolNode, *parse.NilNode:
			default:
				c.fail("%s takes only constants (%s is not one)", head, a)
				return
			}
		}
	}
}

func argAt(cmd *parse.CommandNode, i int) parse.Node {
	if i < len(cmd.Args) {
		return cmd.Args[i]
	}
	return nil
}

// constantCount returns the number a {{range}} over a number constant
// counts to.
func constantCount(p *parse.PipeNode) (int64, bool) {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return 0, false
	}
	n, ok := p.Cmds[0].Args[0].(*parse.NumberNode)
	if !ok || !n.IsInt {
		return 0, false
	}
	return n.Int64, true
}

// checkFormat refuses a printf format whose verbs take their width or
// precision from an argument (%*d) or pad beyond MaxFormatWidth: fmt builds
// the padding before anything can stop it.
func checkFormat(f string) error {
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		j := i + 1
		for j < len(f) && strings.IndexByte("+-# 0123456789.[]*", f[j]) >= 0 {
			j++
		}
		spec := f[i+1 : j]
		if strings.Contains(spec, "*") {
			return fmt.Errorf("a width or precision from an argument (*) is not allowed")
		}
		// Argument indexes ([2]) are no width.
		for strings.Contains(spec, "[") {
			open := strings.Index(spec, "[")
			end := strings.Index(spec[open:], "]")
			if end < 0 {
				break
			}
			spec = spec[:open] + "." + spec[open+end+1:]
		}
		for _, num := range strings.FieldsFunc(spec, func(r rune) bool { return r < '0' || r > '9' }) {
			if n, err := strconv.Atoi(num); err != nil || n > MaxFormatWidth {
				// A leading 0 is the zero-padding flag.
				return fmt.Errorf("width or precision %s is over %d", strings.TrimLeft(num, "0"), MaxFormatWidth)
			}
		}
		i = j // the verb, or the second % of %%
	}
	return nil
}

// branch checks a range or with: its body sees another dot, its else the
// same one.
func (c *checker) branch(b *parse.BranchNode) {
	c.node(b.Pipe)
	saved := c.dot
	c.dot = false
	c.node(b.List)
	c.dot = saved
	c.node(b.ElseList)
}

// rangeFunc is the function boundRanges pipes every {{range}}'s value
// through. Templates cannot call it: it is added after they are parsed.
const rangeFunc = "limitRange"

// boundRanges makes each {{range}} of a checked tree pass what it ranges
// over to limitRange first: {{range .Event.items}} runs as {{range
// .Event.items | limitRange}}.
func boundRanges(t *parse.Tree, n parse.Node) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, x := range n.Nodes {
			boundRanges(t, x)
		}
	case *parse.IfNode:
		boundRanges(t, n.List)
		boundRanges(t, n.ElseList)
	case *parse.WithNode:
		boundRanges(t, n.List)
		boundRanges(t, n.ElseList)
	case *parse.RangeNode:
		id := parse.NewIdentifier(rangeFunc).SetTree(t).SetPos(n.Pipe.Pos)
		n.Pipe.Cmds = append(n.Pipe.Cmds, &parse.CommandNode{NodeType: parse.NodeCommand, Pos: n.Pipe.Pos, Args: []parse.Node{id}})
		boundRanges(t, n.List)
		boundRanges(t, n.ElseList)
	}
}
