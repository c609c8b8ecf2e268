package content

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"unicode/utf8"

	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"

	"github.com/chime-dev/chime/message"
)

// DefaultLang is the language of a reminder that names none.
const DefaultLang = "en"

// Limits on what a reminder may carry.
const (
	MaxTitle        = 200  // characters of a title, in any language
	MaxBody         = 2000 // characters of a body
	MaxTranslations = 100
	MaxTags         = 20
	// MaxTranslationBytes bounds the bytes of all translations together:
	// every group task of an occurrence carries a copy.
	MaxTranslationBytes = 16 << 10
)

// Content is what a reminder says: its templates in its default language
// and in others, and the tags that turn on processing.
type Content struct {
	Title, Body  string
	Lang         string                  // BCP 47; DefaultLang if empty
	Translations map[string]message.Text // by BCP 47 tag
	Tags         []string
}

// Of returns the content a batch carries.
func Of(b *message.Message) Content {
	return Content{Title: b.Title, Body: b.Body, Lang: b.Lang, Translations: b.Translations, Tags: b.Tags}
}

// Problem is one invalid field of a reminder's content.
type Problem struct {
	Field, Message string
}

var tagPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,39}$`)

// Rules are what Normalize checks a content against besides its form.
type Rules struct {
	// Processors are the tag processors; their source stage runs before a
	// template is checked, as at delivery. May be nil.
	Processors *Registry
	// Event says why a template may not read the event field name
	// directly ({{.Event.name}}, which fails at delivery when the event
	// lacks it), or "" if it may. Nil allows every field.
	Event func(name string) string
}

// Normalize validates c and returns it with its language tags in canonical
// form ("pt_BR" becomes "pt-BR") and its tags sorted and without
// duplicates. Each template is checked as it will be parsed at delivery.
func Normalize(c Content, rules Rules) (Content, []Problem) {
	var ps []Problem
	bad := func(field, format string, args ...any) {
		ps = append(ps, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	out := Content{Title: c.Title, Body: c.Body, Lang: DefaultLang}

	if len(c.Tags) > MaxTags {
		bad("tags", "at most %d tags", MaxTags)
	}
	for i, t := range c.Tags {
		if !tagPattern.MatchString(t) {
			bad(fmt.Sprintf("tags[%d]", i), "a tag is 1-40 lowercase letters, digits, '_', '.' or '-'")
		}
	}
	if len(c.Tags) > 0 {
		out.Tags = slices.Clone(c.Tags)
		slices.Sort(out.Tags)
		out.Tags = slices.Compact(out.Tags)
	}
	source, _ := rules.Processors.stages(out.Tags)

	var def language.Tag
	if c.Lang != "" {
		t, err := language.Parse(c.Lang)
		if err != nil {
			bad("lang", "%q is not a BCP 47 language tag", c.Lang)
		} else {
			out.Lang, def = t.String(), t
		}
	} else {
		def = language.Make(DefaultLang)
	}
	check := func(field, name, src string, limit int) {
		if utf8.RuneCountInString(src) > limit {
			bad(field, "must be at most %d characters", limit)
			return
		}
		for _, f := range source {
			src = f(src)
		}
		_, events, err := parseText(name, src)
		if err != nil {
			bad(field, "%v", err)
			return
		}
		for _, e := range events {
			if rules.Event == nil {
				break
			}
			if why := rules.Event(e); why != "" {
				bad(field, "{{.Event.%s}}: %s", e, why)
			}
		}
	}
	check("title", "title", c.Title, MaxTitle)
	check("body", "body", c.Body, MaxBody)

	if len(c.Translations) > MaxTranslations {
		bad("translations", "at most %d languages", MaxTranslations)
	}
	size := 0
	for k, tr := range c.Translations {
		size += len(k) + len(tr.Title) + len(tr.Body)
	}
	if size > MaxTranslationBytes {
		bad("translations", "at most %d bytes of text in all languages together, not %d: every group task carries a copy", MaxTranslationBytes, size)
	}
	seen := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(c.Translations)) {
		tr := c.Translations[k]
		field := "translations." + k
		t, err := language.Parse(k)
		if err != nil {
			bad(field, "%q is not a BCP 47 language tag", k)
			continue
		}
		if t == def {
			bad(field, "is the default language (lang); the reminder's title and body are in it")
			continue
		}
		if other, ok := seen[t.String()]; ok {
			bad(field, "is the same language as translations.%s", other)
			continue
		}
		seen[t.String()] = k
		if tr.Title == "" {
			bad(field+".title", "is required")
		} else {
			check(field+".title", "title", tr.Title, MaxTitle)
		}
		switch {
		case c.Body != "" && tr.Body == "":
			bad(field+".body", "is required: the reminder has a body in its default language")
		case c.Body == "" && tr.Body != "":
			bad(field+".body", "must be empty: the reminder has no body in its default language")
		default:
			check(field+".body", "body", tr.Body, MaxBody)
		}
		if out.Translations == nil {
			out.Translations = map[string]message.Text{}
		}
		out.Translations[t.String()] = tr
	}
	if len(ps) == 0 {
		if _, err := newBundle(out, nil); err != nil {
			bad("translations", "%v", err)
		}
	}
	if len(ps) > 0 {
		return Content{}, ps
	}
	return out, nil
}

// Message IDs in a content's bundle.
const (
	idTitle = "title"
	idBody  = "body"
)

// newBundle returns a go-i18n bundle of c's title and body in every
// language, default first, each text rewritten by source.
func newBundle(c Content, source []func(string) string) (*i18n.Bundle, error) {
	lang := c.Lang
	if lang == "" {
		lang = DefaultLang
	}
	def, err := language.Parse(lang)
	if err != nil {
		return nil, fmt.Errorf("lang %q: %w", lang, err)
	}
	b := i18n.NewBundle(def)
	add := func(tag language.Tag, t message.Text) error {
		msgs := []*i18n.Message{{ID: idTitle, Other: rewrite(t.Title, source)}}
		if t.Body != "" {
			msgs = append(msgs, &i18n.Message{ID: idBody, Other: rewrite(t.Body, source)})
		}
		if err := b.AddMessages(tag, msgs...); err != nil {
			return fmt.Errorf("language %s: %w", tag, err)
		}
		return nil
	}
	if err := add(def, message.Text{Title: c.Title, Body: c.Body}); err != nil {
		return nil, err
	}
	for _, k := range slices.Sorted(maps.Keys(c.Translations)) {
		tag, err := language.Parse(k)
		if err != nil {
			return nil, fmt.Errorf("translation %q: %w", k, err)
		}
		if err := add(tag, c.Translations[k]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func rewrite(s string, fs []func(string) string) string {
	for _, f := range fs {
		s = f(s)
	}
	return s
}
