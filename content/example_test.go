package content_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/chime-dev/chime/content"
	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/sender"
)

// A push channel composes one message per device of a batch. A channel
// with its own Device and Message types adapts in a few lines:
//
//	func (a adapter) Compose(b *sender.Batch, d push.Device, maxBytes int) (push.Message, error) {
//		m, err := a.c.Compose(&b.Message, content.Device{UserID: d.UserID, Platform: d.Platform, Locale: d.Locale, MaxBytes: maxBytes})
//		return push.Message{Title: m.Title, Body: m.Body, Data: m.Data}, err
//	}
func ExampleComposer() {
	reg, err := content.NewRegistry(content.ProcessorsConfig{MaskWords: []string{"judi"}})
	if err != nil {
		panic(err)
	}
	c := content.NewComposer(content.Config{Processors: reg})
	b := &sender.Batch{
		Message: message.Message{Occurrence: 42, Reminder: "flash-sale", Location: "jakarta", Zone: "Asia/Jakarta", FireAt: time.Date(2026, 3, 2, 5, 0, 0, 0, time.UTC), Title: "Flash sale: {{.Event.product}}", Body: "Mulai {{.LocalTime}} WIB. Bukan judi!", Lang: "id", Translations: map[string]message.Text{
			"ar": {Title: "تخفيضات: {{.Event.product}}", Body: "تبدأ الساعة {{.LocalTime}}"},
			"en": {Title: "Flash sale: {{.Event.product}}", Body: "Starts at {{.LocalTime}}. No judi!"},
		}, Tags: []string{"mask"}, Data: json.RawMessage(`{"product":"Sepatu Lari"}`)},
	}
	for _, locale := range []string{"ar-SA", "en_GB", "id-ID", "fr-FR"} {
		m, err := c.Compose(&b.Message, content.Device{UserID: "7", Platform: "android", Locale: locale})
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s → %s: %s | %s\n", locale, m.Lang, m.Title, m.Body)
	}
	// Output:
	// ar-SA → ar: تخفيضات: Sepatu Lari | تبدأ الساعة 12:00
	// en_GB → en: Flash sale: Sepatu Lari | Starts at 12:00. No ****!
	// id-ID → id: Flash sale: Sepatu Lari | Mulai 12:00 WIB. Bukan ****!
	// fr-FR → id: Flash sale: Sepatu Lari | Mulai 12:00 WIB. Bukan ****!
}
