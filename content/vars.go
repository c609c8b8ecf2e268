package content

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
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
	// Event is the JSON object of the event that fired the reminder; nil
	// for timed reminders. Its missing fields are errors; use get for
	// optional ones.
	Event map[string]any
}

// funcs are the functions templates may call besides text/template's own.
var funcs = template.FuncMap{
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
	"get":   get,
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
// checks that it names only known variables, and returns the event fields
// it reads directly ({{.Event.price}} reads "price").
func parseText(field, src string) (*template.Template, []string, error) {
	t, err := template.New(field).Option("missingkey=error").Funcs(funcs).Parse(src)
	if err != nil {
		return nil, nil, err
	}
	var events []string
	for _, tt := range t.Templates() {
		if tt.Tree == nil {
			continue
		}
		// Inside {{define}} blocks dot is whatever the caller passed.
		c := checker{title: field == "title", dot: tt.Name() == field}
		c.node(tt.Tree.Root)
		if c.err != nil {
			return nil, nil, fmt.Errorf("template: %s: %w", field, c.err)
		}
		events = append(events, c.events...)
	}
	slices.Sort(events)
	return t, slices.Compact(events), nil
}

// checker walks a parse tree, refuses variables Vars does not have, and
// collects the event fields read directly.
type checker struct {
	title  bool // the title may not use .Title
	dot    bool // dot is the Vars (false inside range and with)
	events []string
	err    error
}

func (c *checker) fields(idents []string) {
	c.field(idents[0])
	if idents[0] == "Event" && len(idents) > 1 {
		c.events = append(c.events, idents[1])
	}
}

func (c *checker) field(name string) {
	if c.err != nil {
		return
	}
	if !slices.Contains(varNames, name) {
		c.err = fmt.Errorf("unknown variable .%s (known: .%s)", name, strings.Join(varNames, ", ."))
	} else if c.title && name == "Title" {
		c.err = fmt.Errorf(".Title is the rendered title and can only be used in the body")
	}
}

func (c *checker) node(n parse.Node) {
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
		for _, cmd := range n.Cmds {
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
		c.branch(&n.BranchNode)
	case *parse.WithNode:
		c.branch(&n.BranchNode)
	case *parse.TemplateNode:
		c.node(n.Pipe)
	}
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
