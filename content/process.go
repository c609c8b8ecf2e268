package content

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Processor is the processing a tag turns on. Either stage may be nil.
type Processor struct {
	// Source rewrites a title or body template before it is parsed: once
	// per batch content, and when the reminder is validated.
	Source func(string) string
	// Text rewrites each rendered title and body.
	Text func(string) string
}

// Registry maps tags to processors. A tag without a processor is a plain
// label. The zero Registry has no processors; a nil *Registry is valid.
type Registry struct {
	procs map[string]Processor
	order []string // registration order, which is the order processors run in
}

// Register makes tag turn on p, replacing what it turned on before.
func (r *Registry) Register(tag string, p Processor) {
	if r.procs == nil {
		r.procs = map[string]Processor{}
	}
	if _, ok := r.procs[tag]; !ok {
		r.order = append(r.order, tag)
	}
	r.procs[tag] = p
}

// Tags returns the tags that have a processor, in the order they run.
func (r *Registry) Tags() []string {
	if r == nil {
		return nil
	}
	return slices.Clone(r.order)
}

// stages returns the source and text rewrites that tags turn on, in
// registration order.
func (r *Registry) stages(tags []string) (source, text []func(string) string) {
	if r == nil {
		return nil, nil
	}
	for _, tag := range r.order {
		if !slices.Contains(tags, tag) {
			continue
		}
		p := r.procs[tag]
		if p.Source != nil {
			source = append(source, p.Source)
		}
		if p.Text != nil {
			text = append(text, p.Text)
		}
	}
	return source, text
}

// Tags of the built-in processors, and the tag that exempts a reminder
// from merging (a reminder meant to repeat the same words, such as a
// one-off instant reminded at several offsets).
const (
	TagMask         = "mask"
	TagPlaceholders = "placeholders"
	TagNoMerge      = "no-merge"
)

// ProcessorsConfig configures the built-in processors.
type ProcessorsConfig struct {
	// MaskWords are the words (or phrases) the "mask" tag masks.
	MaskWords []string
	// MaskFile names a file of more such words, one per line; blank lines
	// and lines starting with # are skipped. Optional.
	MaskFile string
	// Placeholders are the values of the {{name}} placeholders the
	// "placeholders" tag fills, by name.
	Placeholders map[string]string
}

// NewRegistry returns a registry with the built-in processors: "mask" and
// "placeholders".
func NewRegistry(cfg ProcessorsConfig) (*Registry, error) {
	words := slices.Clone(cfg.MaskWords)
	if cfg.MaskFile != "" {
		more, err := readWords(cfg.MaskFile)
		if err != nil {
			return nil, err
		}
		words = append(words, more...)
	}
	ph, err := NewPlaceholders(cfg.Placeholders)
	if err != nil {
		return nil, err
	}
	r := &Registry{}
	r.Register(TagPlaceholders, Processor{Source: ph.Fill})
	r.Register(TagMask, Processor{Text: NewMasker(words).Mask})
	return r, nil
}

func readWords(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mask words: %w", err)
	}
	defer f.Close()
	var words []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			words = append(words, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mask words: %s: %w", path, err)
	}
	return words, nil
}

// ParseWordList splits an inline list of words on commas and newlines.
func ParseWordList(s string) []string {
	var out []string
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' }) {
		if w = strings.TrimSpace(w); w != "" {
			out = append(out, w)
		}
	}
	return out
}

// ParsePlaceholders reads placeholders given as a JSON object of strings.
func ParsePlaceholders(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("placeholders must be a JSON object of strings: %w", err)
	}
	return m, nil
}

// Placeholders fills {{name}} placeholders with configured values.
type Placeholders struct {
	values map[string]string
}

var (
	placeholderName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	placeholderPattern = regexp.MustCompile(`\{\{-?\s*([A-Za-z_][A-Za-z0-9_]*)\s*-?\}\}`)
)

// NewPlaceholders checks the names (identifiers that are no template
// keyword or function) and returns the processor.
func NewPlaceholders(values map[string]string) (*Placeholders, error) {
	for name := range values {
		if !placeholderName.MatchString(name) || reserved(name) {
			return nil, fmt.Errorf("placeholder %q: a name is letters, digits and '_', and no template keyword or function", name)
		}
	}
	return &Placeholders{values: values}, nil
}

// Fill replaces each configured {{name}} of src with a template string
// constant holding its value, so a value is shown as it is, whatever it
// contains. Other actions are left to the template.
func (p *Placeholders) Fill(src string) string {
	if len(p.values) == 0 || !strings.Contains(src, "{{") {
		return src
	}
	return placeholderPattern.ReplaceAllStringFunc(src, func(m string) string {
		name := placeholderPattern.FindStringSubmatch(m)[1]
		v, ok := p.values[name]
		if !ok {
			return m
		}
		return "{{" + strconv.Quote(v) + "}}"
	})
}

// Masker replaces listed words with asterisks, one per letter. It matches
// whole words (runs of letters, digits and combining marks), compares them
// by Unicode case folding with accents, Arabic vowel marks and tatweel
// ignored, and matches phrases of several words across any separators.
type Masker struct {
	words     map[string]bool // folded words and phrases (words joined by one space)
	maxPhrase int             // the most words in one entry
}

// NewMasker returns a masker of words; entries may be phrases.
func NewMasker(words []string) *Masker {
	m := &Masker{words: map[string]bool{}}
	for _, w := range words {
		var parts []string
		for _, t := range tokenize(nil, w) {
			parts = append(parts, fold(w[t.start:t.end]))
		}
		if len(parts) == 0 {
			continue
		}
		m.words[strings.Join(parts, " ")] = true
		m.maxPhrase = max(m.maxPhrase, len(parts))
	}
	return m
}

type token struct{ start, end int }

// wordRune tells whether r belongs to a word: letters (tatweel included),
// digits, combining marks and the zero-width joiners of Persian and Indic
// scripts.
func wordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) || r == '\u200c' || r == '\u200d'
}

// tokenize appends the words of s to out.
func tokenize(out []token, s string) []token {
	start := -1
	for i, r := range s {
		switch {
		case wordRune(r) && start < 0:
			start = i
		case !wordRune(r) && start >= 0:
			out = append(out, token{start, i})
			start = -1
		}
	}
	if start >= 0 {
		out = append(out, token{start, len(s)})
	}
	return out
}

var folder = cases.Fold()

// fold is the form words are compared in: case-folded, decomposed, without
// combining marks, tatweel and joiners.
func fold(w string) string {
	ascii := true
	for i := 0; i < len(w); i++ {
		if w[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(w)
	}
	var b strings.Builder
	for _, r := range norm.NFD.String(folder.String(w)) {
		if unicode.Is(unicode.Mn, r) || r == '\u0640' || r == '\u200c' || r == '\u200d' {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Mask returns s with every listed word masked.
func (m *Masker) Mask(s string) string {
	if len(m.words) == 0 {
		return s
	}
	// Texts are short: their words fit the arrays on the stack.
	var tokBuf [64]token
	var foldBuf [64]string
	toks := tokenize(tokBuf[:0], s)
	folded := foldBuf[:0]
	for _, t := range toks {
		folded = append(folded, fold(s[t.start:t.end]))
	}
	var b strings.Builder
	last := 0 // bytes of s written so far
	for i := 0; i < len(toks); {
		n := m.match(folded[i:])
		if n == 0 {
			i++
			continue
		}
		b.WriteString(s[last:toks[i].start])
		for j := i; j < i+n; j++ {
			if j > i {
				b.WriteString(s[toks[j-1].end:toks[j].start])
			}
			for _, r := range s[toks[j].start:toks[j].end] {
				if !unicode.IsMark(r) && r != '\u0640' && r != '\u200c' && r != '\u200d' {
					b.WriteByte('*')
				}
			}
		}
		last = toks[i+n-1].end
		i += n
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// match returns how many of the words starting at ws form the longest
// listed entry, or 0.
func (m *Masker) match(ws []string) int {
	for n := min(m.maxPhrase, len(ws)); n > 0; n-- {
		if m.words[strings.Join(ws[:n], " ")] {
			return n
		}
	}
	return 0
}
