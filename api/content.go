package api

import (
	"github.com/chime-dev/chime/content"
	"github.com/chime-dev/chime/store"
)

// reminderContent validates a reminder's texts, language, translations and
// tags with package content; title and body are templates, checked as they
// will be parsed at delivery.
func reminderContent(in *reminderInput, reg *content.Registry) (content.Content, []FieldError) {
	c, ps := content.Normalize(content.Content{
		Title: in.Title, Body: in.Body, Lang: in.Lang, Translations: in.Translations, Tags: in.Tags,
	}, reg)
	errs := make([]FieldError, len(ps))
	for i, p := range ps {
		errs[i] = FieldError{Field: p.Field, Message: p.Message}
	}
	return c, errs
}

func storeTexts(m map[string]content.Text) store.Texts {
	if len(m) == 0 {
		return nil
	}
	out := make(store.Texts, len(m))
	for k, t := range m {
		out[k] = store.Text(t)
	}
	return out
}

func apiTexts(t store.Texts) map[string]content.Text {
	out := make(map[string]content.Text, len(t))
	for k, x := range t {
		out[k] = content.Text(x)
	}
	return out
}
