package content

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/message"
)

func TestParseText(t *testing.T) {
	tests := []struct {
		name, field, src string
		events           []string // event fields read directly
		err              string   // substring of the error; empty for none
	}{
		{"plain", "title", "Fajr", nil, ""},
		{"variables", "body", "Fajr at {{.LocalTime}} in {{.Location}} ({{.Zone}}), {{.User}}", nil, ""},
		{"title in body", "body", "{{.Title}}: starts now", nil, ""},
		{"event fields", "body", "{{.Event.product}} for {{.Event.price}}, {{.Event.product}}", []string{"price", "product"}, ""},
		{"functions", "title", `{{upper .Location}} {{get .Event "name" "friend"}} {{.FireAt.Format "Mon 15:04"}}`, nil, ""},
		{"range sees another dot", "body", "{{range .Event.items}}{{.name}} {{end}}", []string{"items"}, ""},
		{"with else sees the vars", "body", "{{with .Event.name}}{{.}}{{else}}{{.Nope}}{{end}}", nil, "unknown variable .Nope"},
		{"root variable inside range", "body", "{{range .Event.items}}{{$.Locaton}}{{end}}", nil, "unknown variable .Locaton"},
		{"root event inside with", "body", "{{with .Location}}{{$.Event.sku}}{{end}}", []string{"sku"}, ""},
		{"unclosed action", "title", "Sale {{.Location", nil, "unclosed action"},
		{"unknown function", "title", "{{brand}} sale", nil, `function "brand" not defined`},
		{"unknown variable", "title", "Fajr in {{.City}}", nil, "unknown variable .City"},
		{"title in title", "title", "{{.Title}}!", nil, ".Title is the rendered title"},
		{"if branches", "body", "{{if .Event}}{{.Event.x}}{{else}}{{.Lang}}{{end}}", []string{"x"}, ""},

		// What bounds a template's work: each refused form multiplies it.
		{"define", "body", `{{define "a"}}xxxxxxxxxx{{end}}{{template "a"}}{{template "a"}}`, nil, "{{define}} and {{block}} are not allowed"},
		{"block", "body", `{{block "a" .}}x{{end}}`, nil, "{{define}} and {{block}} are not allowed"},
		{"template", "title", `{{template "title"}}`, nil, `{{template "title"}} is not allowed`},
		{"printf width", "title", `{{printf "%0999999d" 1}}`, nil, `printf "%0999999d": width or precision 999999 is over 64`},
		{"printf precision", "body", `{{printf "%.65f" 1.5}}`, nil, "width or precision 65 is over 64"},
		{"printf width from an argument", "body", `{{printf "%*d" 999999 1}}`, nil, "a width or precision from an argument (*) is not allowed"},
		{"printf format from a pipeline", "body", `{{"%0999999d" | printf}}`, nil, "printf takes a quoted format string first"},
		{"printf format from a variable", "body", `{{$f := "%0999999d"}}{{printf $f 1}}`, nil, "printf takes a quoted format string first"},
		{"range in range", "body", `{{range .Event.a}}{{if .}}{{range $.Event.a}}x{{end}}{{end}}{{end}}`, nil, "{{range}} inside {{range}} is not allowed"},
		{"range over a large number", "body", `{{range 1000000000}}{{end}}`, nil, "{{range 1000000000}}: at most 100 items"},
		{"method given a variable", "body", `{{$l := "2"}}{{.FireAt.Format $l}}`, nil, ".FireAt.Format takes only constants ($l is not one)"},
		{"method given a pipeline", "body", `{{"2" | .FireAt.Format}}`, nil, ".FireAt.Format cannot be given a pipeline's value"},
		{"method of a variable given a call", "body", `{{$t := .FireAt}}{{$t.Format (print "2")}}`, nil, "$t.Format takes only constants"},

		// Every documented form still passes.
		{"printf within bounds", "body", `{{printf "%.2f %05d %-10s|%[1]v %x 100%%" 1.5 42 "x"}} {{.LocalTime | printf "at %s"}}`, nil, ""},
		{"one range, its else, another range", "body", `{{range $i, $e := .Event.items}}{{$i}}: {{$e.name}} {{else}}none{{end}}{{range 3}}.{{end}}`, []string{"items"}, ""},
		{"range in the else of a range", "body", `{{range .Event.a}}x{{else}}{{range .Event.b}}y{{end}}{{end}}`, []string{"a", "b"}, ""},
		{"method with constants", "body", `{{.FireAt.Format "Mon 2 Jan 15:04"}} {{$.FireAt.UTC.Format "15:04"}} {{.FireAt.Format "Mon" | upper}}`, nil, ""},
		{"with and functions", "body", `{{with .Event.user}}{{upper .name}}{{end}} {{lower (get .Event "name" "friend")}} {{len .Location}}`, []string{"user"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, events, err := parseText(tt.field, tt.src)
			if tt.err == "" {
				require.NoError(t, err)
				require.Equal(t, tt.events, events)
			} else {
				require.ErrorContains(t, err, tt.err)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	reg, err := NewRegistry(ProcessorsConfig{Placeholders: map[string]string{"brand": "Chime Mart"}})
	require.NoError(t, err)
	tests := []struct {
		name string
		in   Content
		want Content
		bad  []string // fields with problems
	}{
		{
			name: "defaults",
			in:   Content{Title: "Fajr", Body: "Fajr in 10 minutes"},
			want: Content{Title: "Fajr", Body: "Fajr in 10 minutes", Lang: "en"},
		},
		{
			name: "canonical tags, sorted unique tags",
			in: Content{Title: "Sale", Body: "{{.LocalTime}}", Lang: "id", Tags: []string{"mask", "flash", "mask"},
				Translations: map[string]message.Text{"pt_BR": {Title: "Oferta", Body: "às {{.LocalTime}}"}, "ar": {Title: "تخفيضات", Body: "{{.LocalTime}}"}}},
			want: Content{Title: "Sale", Body: "{{.LocalTime}}", Lang: "id", Tags: []string{"flash", "mask"},
				Translations: map[string]message.Text{"pt-BR": {Title: "Oferta", Body: "às {{.LocalTime}}"}, "ar": {Title: "تخفيضات", Body: "{{.LocalTime}}"}}},
		},
		{
			name: "placeholders with their tag",
			in:   Content{Title: "{{brand}} sale", Tags: []string{"placeholders"}},
			want: Content{Title: "{{brand}} sale", Lang: "en", Tags: []string{"placeholders"}},
		},
		{name: "placeholders without their tag", in: Content{Title: "{{brand}} sale"}, bad: []string{"title"}},
		{name: "bad template", in: Content{Title: "Sale {{.Location", Body: "{{.Nope}}"}, bad: []string{"title", "body"}},
		{name: "bad lang", in: Content{Title: "x", Lang: "english!"}, bad: []string{"lang"}},
		{name: "bad tag", in: Content{Title: "x", Tags: []string{"Flash Sale"}}, bad: []string{"tags[0]"}},
		{name: "too long", in: Content{Title: strings.Repeat("a", 201)}, bad: []string{"title"}},
		{name: "translations too large together", in: func() Content {
			c := Content{Title: "Fajr", Body: "now", Translations: map[string]message.Text{}}
			for _, l := range []string{"ar", "id", "ms", "tr", "ur", "fa", "bn", "fr", "de"} {
				c.Translations[l] = message.Text{Title: "x", Body: strings.Repeat("é", 1000)} // 2,000 bytes each
			}
			return c
		}(), bad: []string{"translations"}},
		{
			name: "translation problems",
			in: Content{Title: "Fajr", Body: "Fajr now", Lang: "en", Translations: map[string]message.Text{
				"en-GB": {Title: "Fajr", Body: "x"}, // another language than en: fine
				"EN":    {Title: "Fajr", Body: "x"}, // the default
				"id":    {Body: "Subuh"},            // no title
				"ar":    {Title: "الفجر"},           // no body
				"x y":   {Title: "?", Body: "?"},    // not a tag
				"ms":    {Title: "{{.Foo}}", Body: "Subuh"},
				"pt_BR": {Title: "a", Body: "b"}, "pt-BR": {Title: "a", Body: "b"},
			}},
			bad: []string{"translations.EN", "translations.ar.body", "translations.id.title", "translations.ms.title", "translations.pt_BR", "translations.x y"},
		},
		{
			name: "event fields the rule refuses",
			in: Content{Title: "{{.Event.product}}", Body: "{{.Event.price}} {{get .Event \"note\"}}",
				Translations: map[string]message.Text{"ar": {Title: "{{.Event.product}}", Body: "{{.Event.price}}"}}},
			bad: []string{"body", "translations.ar.body"},
		},
		{
			name: "translation body where the default has none",
			in:   Content{Title: "Live now", Translations: map[string]message.Text{"id": {Title: "Siaran langsung", Body: "sekarang"}}},
			bad:  []string{"translations.id.body"},
		},
	}
	required := func(name string) string {
		if name == "product" {
			return ""
		}
		return "not required"
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ps := Normalize(tt.in, Rules{Processors: reg, Event: required})
			if tt.bad == nil {
				require.Empty(t, ps)
				require.Equal(t, tt.want, got)
				return
			}
			var fields []string
			for _, p := range ps {
				fields = append(fields, p.Field)
				require.NotEmpty(t, p.Message)
			}
			require.ElementsMatch(t, tt.bad, fields, "%+v", ps)
		})
	}
}
