package content

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
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
				Translations: map[string]Text{"pt_BR": {Title: "Oferta", Body: "às {{.LocalTime}}"}, "ar": {Title: "تخفيضات", Body: "{{.LocalTime}}"}}},
			want: Content{Title: "Sale", Body: "{{.LocalTime}}", Lang: "id", Tags: []string{"flash", "mask"},
				Translations: map[string]Text{"pt-BR": {Title: "Oferta", Body: "às {{.LocalTime}}"}, "ar": {Title: "تخفيضات", Body: "{{.LocalTime}}"}}},
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
			c := Content{Title: "Fajr", Body: "now", Translations: map[string]Text{}}
			for _, l := range []string{"ar", "id", "ms", "tr", "ur", "fa", "bn", "fr", "de"} {
				c.Translations[l] = Text{Title: "x", Body: strings.Repeat("é", 1000)} // 2,000 bytes each
			}
			return c
		}(), bad: []string{"translations"}},
		{
			name: "translation problems",
			in: Content{Title: "Fajr", Body: "Fajr now", Lang: "en", Translations: map[string]Text{
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
				Translations: map[string]Text{"ar": {Title: "{{.Event.product}}", Body: "{{.Event.price}}"}}},
			bad: []string{"body", "translations.ar.body"},
		},
		{
			name: "translation body where the default has none",
			in:   Content{Title: "Live now", Translations: map[string]Text{"id": {Title: "Siaran langsung", Body: "sekarang"}}},
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
