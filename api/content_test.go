package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/api"
	"github.com/chime-dev/chime/content"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/store"
)

// sale is a flash-sale reminder in Indonesian with Arabic and Brazilian
// Portuguese translations, templates in every text.
func sale() map[string]any {
	return map[string]any{
		"title": "Flash sale {{.Location}}",
		"body":  "Diskon mulai {{.LocalTime}} WIB, {{get .Event \"product\" \"semua produk\"}}",
		"lang":  "id",
		"tags":  []string{"mask", "flash-sale", "mask"},
		"translations": map[string]any{
			"ar":    map[string]string{"title": "تخفيضات {{.Location}}", "body": "تبدأ الساعة {{.LocalTime}}"},
			"pt_BR": map[string]string{"title": "Promoção relâmpago", "body": "Começa às {{.LocalTime}}"},
		},
		"times": []api.ReminderTime{at("jakarta", "Asia/Jakarta", "12:00")},
	}
}

func TestReminderContentStoredAndRead(t *testing.T) {
	b := setup(t)
	created := b.putReminder("sale", sale())
	want := map[string]message.Text{
		"ar":    {Title: "تخفيضات {{.Location}}", Body: "تبدأ الساعة {{.LocalTime}}"},
		"pt-BR": {Title: "Promoção relâmpago", Body: "Começa às {{.LocalTime}}"}, // canonical tag
	}
	require.Equal(t, "id", created.Lang)
	require.Equal(t, want, created.Translations)
	require.Equal(t, []string{"flash-sale", "mask"}, created.Tags, "sorted, without duplicates")

	var got api.Reminder
	requireJSON(t, b.as(http.MethodGet, "/v1/reminders/sale", nil), http.StatusOK, &got)
	require.Equal(t, created, got)
	var list struct{ Reminders []api.Reminder }
	requireJSON(t, b.as(http.MethodGet, "/v1/reminders", nil), http.StatusOK, &list)
	require.Len(t, list.Reminders, 1)
	require.Equal(t, want, list.Reminders[0].Translations)

	var row store.Reminder
	require.NoError(t, b.env.DB.Where("`key` = ?", "sale").First(&row).Error)
	require.Equal(t, store.Tags{"flash-sale", "mask"}, row.Tags)
	require.Equal(t, "Começa às {{.LocalTime}}", row.Translations["pt-BR"].Body)

	// PUT replaces the whole reminder: without them, no translations or
	// tags, and the default language.
	replaced := b.putReminder("sale", reminder("Flash sale", at("jakarta", "Asia/Jakarta", "12:00")))
	require.Equal(t, "en", replaced.Lang)
	require.Empty(t, replaced.Translations)
	require.Empty(t, replaced.Tags)
	r := b.as(http.MethodGet, "/v1/reminders/sale", nil)
	require.Contains(t, string(r.Body), `"translations":{}`)
	require.Contains(t, string(r.Body), `"tags":[]`)
}

func TestReminderContentRefused(t *testing.T) {
	b := setup(t)
	stored := b.putReminder("sale", sale())
	with := func(change func(m map[string]any)) map[string]any {
		m := sale()
		change(m)
		return m
	}
	tests := []struct {
		name    string
		body    map[string]any
		mention []string
	}{
		{"title does not parse", with(func(m map[string]any) { m["title"] = "Sale {{.Location" }),
			[]string{"title: template: title:1: unclosed action"}},
		{"body names an unknown variable", with(func(m map[string]any) { m["body"] = "at {{.Time}}" }),
			[]string{"body: template: body: unknown variable .Time"}},
		{"title uses .Title", with(func(m map[string]any) { m["title"] = "{{.Title}}" }),
			[]string{"title: template: title: .Title is the rendered title"}},
		{"translation does not parse", with(func(m map[string]any) {
			m["translations"] = map[string]any{"ar": map[string]string{"title": "{{if}}", "body": "x"}}
		}), []string{"translations.ar.title: template: title:1: missing value for if"}},
		{"unknown function", with(func(m map[string]any) { m["body"] = "{{brand}} sale" }),
			[]string{`body: template: body:1: function "brand" not defined`}},
		{"bad language", with(func(m map[string]any) { m["lang"] = "bahasa indonesia" }), []string{"lang: "}},
		{"bad translation language", with(func(m map[string]any) {
			m["translations"] = map[string]any{"arabic!": map[string]string{"title": "x", "body": "y"}}
		}), []string{"translations.arabic!: "}},
		{"translation in the default language", with(func(m map[string]any) {
			m["translations"] = map[string]any{"ID": map[string]string{"title": "x", "body": "y"}}
		}), []string{"translations.ID: is the default language"}},
		{"translation without body", with(func(m map[string]any) {
			m["translations"] = map[string]any{"ar": map[string]string{"title": "x"}}
		}), []string{"translations.ar.body: is required"}},
		{"bad tag", with(func(m map[string]any) { m["tags"] = []string{"Flash Sale"} }), []string{"tags[0]: "}},
		{"every problem at once", with(func(m map[string]any) {
			m["title"], m["body"], m["lang"] = "{{", "{{.Nope}}", "?"
		}), []string{"title: ", "body: ", "lang: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// On the existing reminder and on a new key: 422, nothing stored.
			requireProblem(t, b.as(http.MethodPut, "/v1/reminders/sale", tt.body), http.StatusUnprocessableEntity, tt.mention...)
			requireProblem(t, b.as(http.MethodPut, "/v1/reminders/new", tt.body), http.StatusUnprocessableEntity, tt.mention...)
			var got api.Reminder
			requireJSON(t, b.as(http.MethodGet, "/v1/reminders/sale", nil), http.StatusOK, &got)
			require.Equal(t, stored, got)
			require.Equal(t, http.StatusNotFound, b.as(http.MethodGet, "/v1/reminders/new", nil).Status)
		})
	}
}

func TestReminderPlaceholdersNeedTheirTag(t *testing.T) {
	reg, err := content.NewRegistry(content.ProcessorsConfig{Placeholders: map[string]string{"brand": "Toko Murah"}})
	require.NoError(t, err)
	b := setupWith(t, api.Config{Content: reg})
	body := reminder("{{brand}} flash sale", at("jakarta", "Asia/Jakarta", "12:00"))
	requireProblem(t, b.as(http.MethodPut, "/v1/reminders/sale", body), http.StatusUnprocessableEntity, `function "brand" not defined`)
	body["tags"] = []string{"placeholders"}
	got := b.putReminder("sale", body)
	require.Equal(t, "{{brand}} flash sale", got.Title, "stored as written; filled at delivery")
}

// A template may read an event field directly only when every event has it:
// a topic reminder whose schema requires the field. Elsewhere the read would
// fail the message at delivery, so it is refused when the reminder is stored.
func TestReminderEventFields(t *testing.T) {
	b := setup(t)
	schema := map[string]any{"type": "object", "required": []string{"product"},
		"properties": map[string]any{"product": map[string]string{"type": "string"}, "discount": map[string]string{"type": "integer"}}}
	topic := func(title, body string) map[string]any {
		return map[string]any{"kind": "topic", "title": title, "body": body, "schema": schema}
	}
	got := b.putReminder("sale", topic("{{.Event.product}}", `{{get .Event "discount" 10}}% off`))
	require.Equal(t, "{{.Event.product}}", got.Title)

	requireProblem(t, b.as(http.MethodPut, "/v1/reminders/sale", topic("{{.Event.product}}", "{{.Event.discount}}% off")),
		http.StatusUnprocessableEntity, `body: {{.Event.discount}}: the topic's schema does not require "discount"`, `{{get .Event "discount" "default"}}`)
	daily := reminder("{{.Event.product}} at {{.LocalTime}}", at("jakarta", "Asia/Jakarta", "12:00"))
	requireProblem(t, b.as(http.MethodPut, "/v1/reminders/daily", daily),
		http.StatusUnprocessableEntity, "title: {{.Event.product}}: a daily reminder fires without an event")
	daily["title"] = `{{get .Event "product" "Sale"}} at {{.LocalTime}}`
	b.putReminder("daily", daily)
}

// templateBomb is a body of nested {{define}}s, each template calling the
// one before ten times: 1,223 characters that render to 100 MB.
func templateBomb() string {
	var b strings.Builder
	b.WriteString(`{{define "a"}}` + strings.Repeat("x", 100) + `{{end}}`)
	for c := 'b'; c <= 'g'; c++ {
		fmt.Fprintf(&b, `{{define "%c"}}%s{{end}}`, c, strings.Repeat(fmt.Sprintf(`{{template "%c"}}`, c-1), 10))
	}
	b.WriteString(`{{template "g"}}`)
	return b.String()
}

// Injected: a body (and a translation's body) of seven nested
// {{define}}/{{template}} levels that would render to 100 MB per device,
// and a printf whose width pads to a megabyte. Checked: 422 naming the
// field and the rule, and nothing stored, neither the new key nor a change
// to the existing reminder.
func TestReminderTemplateBombsRefused(t *testing.T) {
	b := setup(t)
	stored := b.putReminder("sale", sale())
	with := func(change func(m map[string]any)) map[string]any {
		m := sale()
		change(m)
		return m
	}
	tests := []struct {
		name    string
		body    map[string]any
		mention []string
	}{
		{"define and template", with(func(m map[string]any) { m["body"] = templateBomb() }),
			[]string{"body: template: body: {{define}} and {{block}} are not allowed"}},
		{"define and template in a translation", with(func(m map[string]any) {
			m["translations"] = map[string]any{"ar": map[string]string{"title": "تخفيضات", "body": templateBomb()}}
		}), []string{"translations.ar.body: template: body: {{define}} and {{block}} are not allowed"}},
		{"printf width", with(func(m map[string]any) { m["title"] = `{{printf "%0999999d" 1}}` }),
			[]string{`title: template: title: printf "%0999999d": width or precision 999999 is over 64`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireProblem(t, b.as(http.MethodPut, "/v1/reminders/sale", tt.body), http.StatusUnprocessableEntity, tt.mention...)
			requireProblem(t, b.as(http.MethodPut, "/v1/reminders/new", tt.body), http.StatusUnprocessableEntity, tt.mention...)
			var got api.Reminder
			requireJSON(t, b.as(http.MethodGet, "/v1/reminders/sale", nil), http.StatusOK, &got)
			require.Equal(t, stored, got)
			require.Equal(t, http.StatusNotFound, b.as(http.MethodGet, "/v1/reminders/new", nil).Status)
		})
	}
}
