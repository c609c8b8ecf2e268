package api

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/chime-dev/chime/content"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/store"
)

// reminderContent validates a reminder's texts, language, translations and
// tags with package content; title and body are templates, checked as they
// will be parsed at delivery.
func reminderContent(in *reminderInput, reg *content.Registry, kind, schema string) (content.Content, []FieldError) {
	c, ps := content.Normalize(content.Content{
		Title: in.Title, Body: in.Body, Lang: in.Lang, Translations: in.Translations, Tags: in.Tags,
	}, content.Rules{Processors: reg, Event: eventRule(kind, schema)})
	errs := make([]FieldError, len(ps))
	for i, p := range ps {
		errs[i] = FieldError{Field: p.Field, Message: p.Message}
	}
	return c, errs
}

// eventRule says which event fields a reminder's templates may read
// directly. Such a read fails the message when the event lacks the field,
// so only fields every event has are allowed: those a topic's schema
// requires. Reminders of other kinds fire without an event. Optional fields
// are read with get, which never fails.
func eventRule(kind, schema string) func(string) string {
	if kind != store.KindTopic {
		return func(string) string {
			return fmt.Sprintf("a %s reminder fires without an event, so this would fail every message; only topic reminders have event data", kind)
		}
	}
	if schema == "" {
		return nil // the schema is invalid and reported as such
	}
	var doc struct {
		Required []string `json:"required"`
	}
	_ = json.Unmarshal([]byte(schema), &doc)
	return func(name string) string {
		if slices.Contains(doc.Required, name) {
			return ""
		}
		return fmt.Sprintf(`the topic's schema does not require %q, so an event may lack it and the message fail: add it to "required", or read it with {{get .Event %q "default"}}`, name, name)
	}
}

func storeTexts(m map[string]message.Text) store.Texts {
	if len(m) == 0 {
		return nil
	}
	out := make(store.Texts, len(m))
	for k, t := range m {
		out[k] = t
	}
	return out
}

func apiTexts(t store.Texts) map[string]message.Text {
	out := make(map[string]message.Text, len(t))
	for k, x := range t {
		out[k] = x
	}
	return out
}
