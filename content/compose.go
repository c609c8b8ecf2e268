package content

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/template"

	"github.com/nicksnyder/go-i18n/v2/i18n"
	i18ntemplate "github.com/nicksnyder/go-i18n/v2/i18n/template"
	"golang.org/x/text/language"

	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/sender"
)

// Device is what composing a message needs to know of a device.
type Device struct {
	UserID   string
	Platform string // ios, android, web
	Locale   string // BCP 47 or POSIX style: "ar-SA", "pt_BR"; empty for the default language
}

// Message is what one device is sent.
type Message struct {
	Title string
	Body  string
	// Lang is the language the message is in.
	Lang string
	// Data are key-value pairs for the app: reminder, occurrence, lang. The
	// map is shared by the messages of a batch and must not be modified.
	Data map[string]string
}

// Config configures a Composer.
type Config struct {
	// Processors are what reminder tags turn on. Defaults to none.
	Processors *Registry
	// CacheSize is how many batches, and how many batch contents, are kept
	// prepared; the cache keeps between one and two times as many. Defaults
	// to 1024.
	CacheSize int
}

// Composer turns a batch and a device into the message for that device.
// It prepares each batch content once (parses its templates, builds its
// language bundle, decodes its event) and keeps it in a cache, so the cost
// per device is a language choice cached per locale, two template
// executions and the text processors. It is safe for concurrent use.
type Composer struct {
	cfg Config

	mu        sync.RWMutex
	byBatch   [2]map[*sender.Batch]*Prepared // current and previous generation
	byContent [2]map[string]*Prepared
}

// NewComposer returns a Composer.
func NewComposer(cfg Config) *Composer {
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 1024
	}
	c := &Composer{cfg: cfg}
	c.byBatch[0] = map[*sender.Batch]*Prepared{}
	c.byContent[0] = map[string]*Prepared{}
	return c
}

// Compose returns the message for device d of batch b. An error is a
// failure for this device's user (a template could not be filled: most
// often an event field that the event does not carry).
func (c *Composer) Compose(b *sender.Batch, d Device) (Message, error) {
	p, err := c.Prepare(b)
	if err != nil {
		return Message{}, err
	}
	return p.Compose(d)
}

// ContentKey identifies what b says, for merging identical reminders: the
// hash of its default-language message filled without a user, its
// translations and its tags. Two batches with equal keys say the same to
// every user whose message does not depend on the user.
func (c *Composer) ContentKey(b *sender.Batch) (string, error) {
	p, err := c.Prepare(b)
	if err != nil {
		return "", err
	}
	return p.key, nil
}

// Prepare returns b's prepared content, from the cache when b, or a batch
// with the same content, was prepared before.
func (c *Composer) Prepare(b *sender.Batch) (*Prepared, error) {
	c.mu.RLock()
	p := c.byBatch[0][b]
	if p == nil {
		p = c.byBatch[1][b]
	}
	c.mu.RUnlock()
	if p != nil {
		return p, p.err
	}
	fp := fingerprint(b)
	c.mu.RLock()
	p = c.byContent[0][fp]
	if p == nil {
		p = c.byContent[1][fp]
	}
	c.mu.RUnlock()
	if p == nil {
		// Two goroutines may prepare the same content at once; both results
		// are equal and the second one stays.
		p = prepare(b, c.cfg.Processors)
	}
	c.mu.Lock()
	if len(c.byBatch[0]) >= c.cfg.CacheSize {
		c.byBatch[1], c.byBatch[0] = c.byBatch[0], map[*sender.Batch]*Prepared{}
	}
	c.byBatch[0][b] = p
	if _, ok := c.byContent[0][fp]; !ok {
		if len(c.byContent[0]) >= c.cfg.CacheSize {
			c.byContent[1], c.byContent[0] = c.byContent[0], map[string]*Prepared{}
		}
		c.byContent[0][fp] = p
	}
	c.mu.Unlock()
	return p, p.err
}

// fingerprint hashes every field of b that a message depends on, except
// the user.
func fingerprint(b *sender.Batch) string {
	h := sha256.New()
	var n [8]byte
	field := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(strconv.FormatInt(b.Occurrence, 10))
	field(b.Reminder)
	field(b.Title)
	field(b.Body)
	field(b.Lang)
	field(b.Location)
	field(b.Zone)
	field(b.FireAt.UTC().Format("2006-01-02T15:04:05.999999999"))
	field(string(b.Data))
	field(strings.Join(b.Tags, "\x00"))
	langs := make([]string, 0, len(b.Translations))
	for k := range b.Translations {
		langs = append(langs, k)
	}
	sort.Strings(langs)
	for _, k := range langs {
		field(k)
		field(b.Translations[k].Title)
		field(b.Translations[k].Body)
	}
	return string(h.Sum(nil))
}

// Prepared is a batch content made ready for composing: templates parsed,
// language bundle built, event decoded. It is safe for concurrent use.
type Prepared struct {
	err     error
	base    Vars
	bundle  *i18n.Bundle
	matcher language.Matcher
	parser  *parser
	text    []func(string) string
	hasBody bool
	data    map[string]string // without lang
	key     string
	locales sync.Map // device locale -> *locale
}

// locale is the language chosen for one device locale.
type locale struct {
	lang string
	loc  *i18n.Localizer
	data map[string]string
}

func prepare(b *sender.Batch, reg *Registry) *Prepared {
	p := &Prepared{}
	if err := p.init(b, reg); err != nil {
		p.err = fmt.Errorf("content of reminder %s: %w", b.Reminder, err)
	}
	return p
}

func (p *Prepared) init(b *sender.Batch, reg *Registry) error {
	c := Of(b)
	source, text := reg.stages(c.Tags)
	p.text = text
	p.hasBody = c.Body != ""
	bundle, err := newBundle(c, source)
	if err != nil {
		return err
	}
	p.bundle = bundle
	p.matcher = language.NewMatcher(bundle.LanguageTags())
	p.parser = &parser{parsed: map[string]*template.Template{}}
	parse := func(name, src string) error {
		src = rewrite(src, source)
		if !strings.Contains(src, "{{") {
			return nil
		}
		t, err := parseText(name, src)
		if err != nil {
			return err
		}
		p.parser.parsed[src] = t
		return nil
	}
	texts := []Text{{Title: c.Title, Body: c.Body}}
	for _, t := range c.Translations {
		texts = append(texts, t)
	}
	for _, t := range texts {
		if err := parse("title", t.Title); err != nil {
			return err
		}
		if err := parse("body", t.Body); err != nil {
			return err
		}
	}
	zone, err := localtime.LoadZone(b.Zone)
	if err != nil {
		return err
	}
	at := b.FireAt.In(zone)
	p.base = Vars{
		Reminder: b.Reminder, Location: b.Location, Zone: b.Zone, FireAt: at,
		LocalTime: at.Format("15:04"), LocalDate: at.Format("2006-01-02"),
	}
	if len(bytes.TrimSpace(b.Data)) > 0 && string(bytes.TrimSpace(b.Data)) != "null" {
		dec := json.NewDecoder(bytes.NewReader(b.Data))
		dec.UseNumber() // 1500000 stays 1500000, not 1.5e+06
		if err := dec.Decode(&p.base.Event); err != nil {
			return fmt.Errorf("event data is not a JSON object: %w", err)
		}
	}
	p.data = map[string]string{"reminder": b.Reminder, "occurrence": strconv.FormatInt(b.Occurrence, 10)}
	p.key = p.contentKey(c)
	return nil
}

// contentKey is the hash of the default-language message filled without a
// user (or, when that fails, of its templates and event), the
// translations and the tags.
func (p *Prepared) contentKey(c Content) string {
	h := sha256.New()
	var n [8]byte
	field := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	if m, err := p.Compose(Device{}); err == nil {
		field("message")
		field(m.Title)
		field(m.Body)
	} else {
		field("templates")
		field(c.Title)
		field(c.Body)
		ev, _ := json.Marshal(p.base.Event)
		field(string(ev))
	}
	field(c.Lang)
	langs := make([]string, 0, len(c.Translations))
	for k := range c.Translations {
		langs = append(langs, k)
	}
	sort.Strings(langs)
	for _, k := range langs {
		field(k)
		field(c.Translations[k].Title)
		field(c.Translations[k].Body)
	}
	field(strings.Join(c.Tags, "\x00"))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Compose returns the message for d.
func (p *Prepared) Compose(d Device) (Message, error) {
	if p.err != nil {
		return Message{}, p.err
	}
	l := p.locale(d.Locale)
	v := p.base
	v.User, v.Platform, v.Lang = d.UserID, d.Platform, l.lang
	title, err := l.loc.Localize(&i18n.LocalizeConfig{MessageID: idTitle, TemplateData: &v, TemplateParser: p.parser})
	if err != nil {
		return Message{}, fmt.Errorf("content: title: %w", err)
	}
	var body string
	if p.hasBody {
		v.Title = title
		if body, err = l.loc.Localize(&i18n.LocalizeConfig{MessageID: idBody, TemplateData: &v, TemplateParser: p.parser}); err != nil {
			return Message{}, fmt.Errorf("content: body: %w", err)
		}
	}
	for _, f := range p.text {
		title, body = f(title), f(body)
	}
	return Message{Title: title, Body: body, Lang: l.lang, Data: l.data}, nil
}

// locale returns the language chosen for a device locale, cached: the best
// match among the bundle's languages, or the default language.
func (p *Prepared) locale(s string) *locale {
	if l, ok := p.locales.Load(s); ok {
		return l.(*locale)
	}
	tags := p.bundle.LanguageTags()
	chosen := tags[0] // the default language
	if s != "" {
		if want, err := language.Parse(s); err == nil {
			if _, i, conf := p.matcher.Match(want); conf != language.No {
				chosen = tags[i]
			}
		}
	}
	l := &locale{lang: chosen.String(), loc: i18n.NewLocalizer(p.bundle, chosen.String()), data: make(map[string]string, len(p.data)+1)}
	for k, v := range p.data {
		l.data[k] = v
	}
	l.data["lang"] = l.lang
	p.locales.Store(s, l)
	return l
}

// parser hands go-i18n the templates Prepare parsed, so none is parsed
// per message.
type parser struct {
	parsed map[string]*template.Template
}

var _ i18ntemplate.Parser = (*parser)(nil)

func (p *parser) Cacheable() bool { return true }

func (p *parser) Parse(src, _, _ string) (i18ntemplate.ParsedTemplate, error) {
	if t, ok := p.parsed[src]; ok {
		return executable{t}, nil
	}
	if strings.Contains(src, "{{") {
		return nil, fmt.Errorf("template not prepared: %q", src)
	}
	return constant(src), nil
}

type executable struct{ t *template.Template }

func (e executable) Execute(data any) (string, error) {
	var b strings.Builder
	if err := e.t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

type constant string

func (c constant) Execute(any) (string, error) { return string(c), nil }
