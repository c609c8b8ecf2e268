package content

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nicksnyder/go-i18n/v2/i18n"
	i18ntemplate "github.com/nicksnyder/go-i18n/v2/i18n/template"
	"golang.org/x/text/language"

	"github.com/chime-dev/chime/localtime"
	"github.com/chime-dev/chime/message"
)

// Device is what composing a message needs to know of a device.
type Device struct {
	UserID   string
	Platform string // ios, android, web
	Locale   string // BCP 47 or POSIX style: "ar-SA", "pt_BR"; empty for the default language
	// MaxBytes is the most bytes the message's title and body may take
	// together on the device's channel; rendering stops as soon as they
	// would take more. Defaults to DefaultMaxMessage.
	MaxBytes int
}

// Message is what one device is sent.
type Message struct {
	Title string
	Body  string
	// Lang is the language the message is in.
	Lang string
	// Data are key-value pairs for the app: reminder and occurrence. The
	// map is shared by the messages of a batch and must not be modified.
	Data map[string]string
}

// Config configures a Composer.
type Config struct {
	// Processors are what reminder tags turn on. Defaults to none.
	Processors *Registry
	// CacheSize is how many batches, batch contents and reminder contents
	// are kept prepared; each cache keeps between one and two times as
	// many. Defaults to 1024.
	CacheSize int
}

// Composer turns a batch and a device into the message for that device.
//
// Work is done once at each level and cached: per reminder content (its
// templates parsed, its language bundle and matcher built: shared by the
// occurrences of a reminder at every location), per batch content (the
// location's variables, the decoded event, the content key: shared by the
// chunks of an occurrence), and per device locale (the language chosen).
// Per device remain two template executions and the text processors. It is
// safe for concurrent use.
type Composer struct {
	cfg Config

	mu       sync.RWMutex
	batches  cache[*message.Message, *Prepared]
	prepared cache[string, *Prepared]
	compiled cache[string, *compiled]
}

// cache is a map that forgets: when the current generation is full it
// becomes the previous one, and the one before is dropped.
type cache[K comparable, V any] struct {
	size     int
	cur, old map[K]V
}

func (c *cache[K, V]) get(k K) (V, bool) {
	if v, ok := c.cur[k]; ok {
		return v, true
	}
	v, ok := c.old[k]
	return v, ok
}

func (c *cache[K, V]) put(k K, v V) {
	if c.cur == nil || len(c.cur) >= c.size {
		c.old, c.cur = c.cur, make(map[K]V)
	}
	c.cur[k] = v
}

// NewComposer returns a Composer.
func NewComposer(cfg Config) *Composer {
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 1024
	}
	c := &Composer{cfg: cfg}
	c.batches.size, c.prepared.size, c.compiled.size = cfg.CacheSize, cfg.CacheSize, cfg.CacheSize
	return c
}

// Compose returns the message for device d of batch b. An error is a
// failure for this device's user (a template could not be filled: most
// often an event field that the event does not carry, or a message longer
// than d.MaxBytes, a *TooLongError).
func (c *Composer) Compose(b *message.Message, d Device) (Message, error) {
	p, err := c.Prepare(b)
	if err != nil {
		return Message{}, err
	}
	return p.Compose(d)
}

// ContentKey identifies what b says, for merging identical reminders: the
// hash of its default-language message filled without a user, its
// translations and its tags. Two batches with equal keys say the same to
// every user whose message does not depend on the user. It is "" for a
// reminder tagged TagNoMerge, which Merger.Filter never merges.
func (c *Composer) ContentKey(b *message.Message) (string, error) {
	p, err := c.Prepare(b)
	if err != nil {
		return "", err
	}
	return p.key, nil
}

// Prepare returns b's prepared content, from the cache when b, or a batch
// with the same content, was prepared before. The cache knows a batch by
// its address, so a batch's fields other than Users must not change once
// it was prepared.
func (c *Composer) Prepare(b *message.Message) (*Prepared, error) {
	c.mu.RLock()
	p, ok := c.batches.get(b)
	c.mu.RUnlock()
	if ok {
		return p, p.err
	}
	contentFP, batchFP := fingerprints(b)
	c.mu.RLock()
	p, ok = c.prepared.get(batchFP)
	cc, compiledOK := c.compiled.get(contentFP)
	c.mu.RUnlock()
	// Two goroutines may prepare the same content at once; the results are
	// equal and the later one stays.
	if !ok {
		if !compiledOK {
			cc = compile(Of(b), c.cfg.Processors)
			c.mu.Lock()
			c.compiled.put(contentFP, cc)
			c.mu.Unlock()
		}
		p = prepare(b, cc)
	}
	c.mu.Lock()
	c.batches.put(b, p)
	if !ok {
		c.prepared.put(batchFP, p)
	}
	c.mu.Unlock()
	return p, p.err
}

// fingerprints hash what a message depends on, except the user and the
// device: the reminder's content, and with it everything else of the batch.
func fingerprints(b *message.Message) (content, batch string) {
	h := newFieldHash()
	h.add(b.Title)
	h.add(b.Body)
	h.add(b.Lang)
	h.add(strings.Join(b.Tags, "\x00"))
	h.addTranslations(b.Translations)
	content = string(h.sum())
	h.add(strconv.FormatInt(b.Occurrence, 10))
	h.add(b.Reminder)
	h.add(b.Location)
	h.add(b.Zone)
	h.add(b.FireAt.UTC().Format(time.RFC3339Nano))
	h.add(string(b.Data))
	return content, string(h.sum())
}

// fieldHash is a SHA-256 of a sequence of strings, each written after its
// length so that no two sequences hash alike.
type fieldHash struct {
	h hash.Hash
	n [8]byte
}

func newFieldHash() *fieldHash { return &fieldHash{h: sha256.New()} }

func (f *fieldHash) add(s string) {
	binary.BigEndian.PutUint64(f.n[:], uint64(len(s)))
	f.h.Write(f.n[:])
	f.h.Write([]byte(s))
}

// addTranslations adds each translation's language, title and body, in
// language order so that the hash does not depend on the map's.
func (f *fieldHash) addTranslations(ts map[string]message.Text) {
	for _, lang := range slices.Sorted(maps.Keys(ts)) {
		f.add(lang)
		f.add(ts[lang].Title)
		f.add(ts[lang].Body)
	}
}

// sum returns the hash of what was added so far.
func (f *fieldHash) sum() []byte { return f.h.Sum(nil) }

// compiled is a reminder's content made ready: every template parsed
// once, the go-i18n bundle of its languages, and the language chosen for
// each device locale seen.
type compiled struct {
	err     error
	content Content
	bundle  *i18n.Bundle
	matcher language.Matcher
	parser  *parser
	text    []func(string) string
	hasBody bool
	locales sync.Map // device locale -> *locale
}

// locale is the language chosen for one device locale.
type locale struct {
	lang string
	loc  *i18n.Localizer
}

func compile(c Content, reg *Registry) *compiled {
	cc := &compiled{content: c}
	source, text := reg.stages(c.Tags)
	cc.text = text
	cc.hasBody = c.Body != ""
	bundle, err := newBundle(c, source)
	if err != nil {
		cc.err = err
		return cc
	}
	cc.bundle = bundle
	cc.matcher = language.NewMatcher(bundle.LanguageTags())
	cc.parser = &parser{parsed: map[string]*executable{}}
	texts := []message.Text{{Title: c.Title, Body: c.Body}}
	for _, t := range c.Translations {
		texts = append(texts, t)
	}
	for _, t := range texts {
		for _, x := range [][2]string{{"title", t.Title}, {"body", t.Body}} {
			src := rewrite(x[1], source)
			if !strings.Contains(src, "{{") {
				continue
			}
			tmpl, _, err := parseText(x[0], src)
			if err != nil {
				cc.err = err
				return cc
			}
			cc.parser.parsed[src] = &executable{t: tmpl}
		}
	}
	return cc
}

// locale returns the language chosen for a device locale, cached: the best
// match among the bundle's languages, or the default language.
func (cc *compiled) locale(s string) *locale {
	if l, ok := cc.locales.Load(s); ok {
		return l.(*locale)
	}
	tags := cc.bundle.LanguageTags()
	chosen := tags[0] // the default language
	if s != "" {
		if want, err := language.Parse(s); err == nil {
			if _, i, conf := cc.matcher.Match(want); conf != language.No {
				chosen = tags[i]
			}
		}
	}
	l := &locale{lang: chosen.String(), loc: i18n.NewLocalizer(cc.bundle, chosen.String())}
	cc.locales.Store(s, l)
	return l
}

// Prepared is a batch content made ready for composing: its reminder
// content compiled, its variables set, its event decoded. It is safe for
// concurrent use.
type Prepared struct {
	err  error
	c    *compiled
	base Vars
	data map[string]string
	key  string
}

func prepare(b *message.Message, cc *compiled) *Prepared {
	p := &Prepared{c: cc}
	if err := p.init(b); err != nil {
		p.err = fmt.Errorf("content of reminder %s: %w", b.Reminder, err)
	}
	return p
}

func (p *Prepared) init(b *message.Message) error {
	if p.c.err != nil {
		return p.c.err
	}
	zone, err := localtime.LoadZone(b.Zone)
	if err != nil {
		return err
	}
	at := b.FireAt.In(zone)
	p.base = Vars{
		Reminder: b.Reminder, Location: b.Location, Zone: b.Zone, FireAt: at,
		LocalTime: at.Format("15:04"), LocalDate: at.Format("2006-01-02"), Prayer: b.Prayer,
	}
	if data := bytes.TrimSpace(b.Data); len(data) > 0 && string(data) != "null" {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber() // 1500000 stays 1500000, not 1.5e+06
		if err := dec.Decode(&p.base.Event); err != nil {
			return fmt.Errorf("event data is not a JSON object: %w", err)
		}
	}
	p.data = map[string]string{"reminder": b.Reminder, "occurrence": strconv.FormatInt(b.Occurrence, 10)}
	if !slices.Contains(b.Tags, TagNoMerge) {
		p.key = p.contentKey()
	}
	return nil
}

// contentKey is the hash of the default-language message filled without a
// user (or, when that fails, of its templates and event), the
// translations and the tags.
func (p *Prepared) contentKey() string {
	c := p.c.content
	h := newFieldHash()
	if m, err := p.Compose(Device{}); err == nil {
		h.add("message")
		h.add(m.Title)
		h.add(m.Body)
	} else {
		h.add("templates")
		h.add(c.Title)
		h.add(c.Body)
		ev, _ := json.Marshal(p.base.Event)
		h.add(string(ev))
	}
	h.add(c.Lang)
	h.addTranslations(c.Translations)
	h.add(strings.Join(c.Tags, "\x00"))
	return hex.EncodeToString(h.sum()[:16])
}

// Compose returns the message for d.
func (p *Prepared) Compose(d Device) (Message, error) {
	if p.err != nil {
		return Message{}, p.err
	}
	l := p.c.locale(d.Locale)
	v := p.base
	v.User, v.Platform, v.Lang = d.UserID, d.Platform, l.lang
	maxBytes := cmp.Or(d.MaxBytes, DefaultMaxMessage)
	r := newRender(&v, maxBytes)
	title, err := l.loc.Localize(&i18n.LocalizeConfig{MessageID: idTitle, TemplateData: r, TemplateParser: p.c.parser})
	if err != nil {
		return Message{}, fmt.Errorf("content: title: %w", err)
	}
	var body string
	if p.c.hasBody {
		// A title without actions is no template and wrote nothing.
		if r.left = maxBytes - len(title); r.left < 0 {
			return Message{}, fmt.Errorf("content: title: %w", &TooLongError{Max: maxBytes})
		}
		v.Title = title
		if body, err = l.loc.Localize(&i18n.LocalizeConfig{MessageID: idBody, TemplateData: r, TemplateParser: p.c.parser}); err != nil {
			return Message{}, fmt.Errorf("content: body: %w", err)
		}
	}
	for _, f := range p.c.text {
		title, body = f(title), f(body)
	}
	if len(title)+len(body) > maxBytes {
		return Message{}, fmt.Errorf("content: %w", &TooLongError{Max: maxBytes})
	}
	return Message{Title: title, Body: body, Lang: l.lang, Data: p.data}, nil
}

// parser hands go-i18n the templates Prepare parsed, so none is parsed
// per message.
type parser struct {
	parsed map[string]*executable
}

var _ i18ntemplate.Parser = (*parser)(nil)

func (p *parser) Cacheable() bool { return true }

func (p *parser) Parse(src, _, _ string) (i18ntemplate.ParsedTemplate, error) {
	if e, ok := p.parsed[src]; ok {
		return e, nil
	}
	if strings.Contains(src, "{{") {
		return nil, fmt.Errorf("template not prepared: %q", src)
	}
	return constant(src), nil
}

type constant string

func (c constant) Execute(any) (string, error) { return string(c), nil }
