package content

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/message"
	"github.com/chime-dev/chime/sender"
)

// fajr is a prayer reminder in English with Arabic, Indonesian and
// Brazilian Portuguese translations, fired at 04:20 in Jakarta.
func fajr() *sender.Batch {
	return &sender.Batch{
		Message: message.Message{
			Occurrence: 7, Reminder: "fajr", Location: "jakarta", Zone: "Asia/Jakarta",
			FireAt: time.Date(2026, 3, 1, 21, 20, 0, 0, time.UTC), // 04:20 on 2 March in Jakarta
			Title:  "Fajr", Body: "Fajr prayer at {{.LocalTime}} in {{.Location}}", Lang: "en",
			Translations: map[string]message.Text{
				"ar":    {Title: "الفجر", Body: "حان موعد صلاة الفجر {{.LocalTime}}"},
				"id":    {Title: "Subuh", Body: "Waktu salat Subuh {{.LocalTime}} di {{.Location}}"},
				"pt-BR": {Title: "Fajr", Body: "Oração do Fajr às {{.LocalTime}}"},
			},
		},
		Users: []string{"1", "2"},
	}
}

func TestComposeLocale(t *testing.T) {
	c := NewComposer(Config{})
	tests := []struct {
		locale, lang, title, body string
	}{
		{"ar-SA", "ar", "الفجر", "حان موعد صلاة الفجر 04:20"},
		{"ar", "ar", "الفجر", "حان موعد صلاة الفجر 04:20"},
		{"id-ID", "id", "Subuh", "Waktu salat Subuh 04:20 di jakarta"},
		{"in_ID", "id", "Subuh", "Waktu salat Subuh 04:20 di jakarta"}, // Android's old code for Indonesian
		{"pt_BR", "pt-BR", "Fajr", "Oração do Fajr às 04:20"},
		{"pt-PT", "pt-BR", "Fajr", "Oração do Fajr às 04:20"}, // the closest Portuguese
		{"en-US", "en", "Fajr", "Fajr prayer at 04:20 in jakarta"},
		{"fr-FR", "en", "Fajr", "Fajr prayer at 04:20 in jakarta"}, // no French: the default language
		{"", "en", "Fajr", "Fajr prayer at 04:20 in jakarta"},
		{"not a locale!", "en", "Fajr", "Fajr prayer at 04:20 in jakarta"},
	}
	b := fajr()
	for _, tt := range tests {
		t.Run(tt.locale, func(t *testing.T) {
			m, err := c.Compose(&b.Message, Device{UserID: "42", Platform: "ios", Locale: tt.locale})
			require.NoError(t, err)
			require.Equal(t, Message{Title: tt.title, Body: tt.body, Lang: tt.lang,
				Data: map[string]string{"reminder": "fajr", "occurrence": "7"}}, m)
		})
	}
}

func TestComposeDefaultLanguageFallback(t *testing.T) {
	// The default language is Indonesian; a device in English gets it.
	b := &sender.Batch{
		Message: message.Message{Reminder: "sale", Zone: "Asia/Jakarta", FireAt: time.Date(2026, 3, 1, 5, 0, 0, 0, time.UTC), Title: "Flash sale!", Body: "Mulai {{.LocalTime}} WIB", Lang: "id", Translations: map[string]message.Text{"ar": {Title: "تخفيضات", Body: "تبدأ {{.LocalTime}}"}}},
	}
	m, err := NewComposer(Config{}).Compose(&b.Message, Device{Locale: "en-GB"})
	require.NoError(t, err)
	require.Equal(t, "id", m.Lang)
	require.Equal(t, "Mulai 12:00 WIB", m.Body)
}

func TestComposeTemplates(t *testing.T) {
	reg, err := NewRegistry(ProcessorsConfig{
		MaskWords:    []string{"judi", "scam"},
		Placeholders: map[string]string{"brand": "Toko Murah", "hotline": "1500-123"},
	})
	require.NoError(t, err)
	c := NewComposer(Config{Processors: reg})
	event := json.RawMessage(`{"product":"Sepatu Lari","price":1500000,"stock":12,"seller":"judi scam shop"}`)
	tests := []struct {
		name        string
		title, body string
		tags        []string
		data        json.RawMessage
		want        Message
		err         string
	}{
		{
			name: "every variable", title: "{{.Reminder}} at {{.Location}}",
			body: "{{.Title}}: {{.LocalDate}} {{.LocalTime}} {{.Zone}} {{.FireAt.Format \"Mon\"}} user {{.User}} on {{.Platform}} in {{.Lang}}",
			want: Message{Title: "sale at jakarta", Body: "sale at jakarta: 2026-03-02 04:20 Asia/Jakarta Mon user 42 on android in en"},
		},
		{
			name: "event fields", title: "{{.Event.product}} {{upper \"sale\"}}", body: "Rp{{.Event.price}}, {{.Event.stock}} left", data: event,
			want: Message{Title: "Sepatu Lari SALE", Body: "Rp1500000, 12 left"},
		},
		{
			name: "optional event field", title: "Hi {{get .Event \"name\" \"friend\"}}", body: "{{get .Event \"product\"}}", data: event,
			want: Message{Title: "Hi friend", Body: "Sepatu Lari"},
		},
		{
			name: "missing event field is an error", title: "Sale", body: "{{.Event.discount}}% off", data: event,
			err: `map has no entry for key "discount"`,
		},
		{
			name: "event field of a timed reminder is an error", title: "Sale", body: "{{.Event.product}}",
			err: `map has no entry for key "product"`,
		},
		{
			name: "mask applies to event values", title: "{{.Event.product}}", body: "by {{.Event.seller}}", data: event, tags: []string{"mask"},
			want: Message{Title: "Sepatu Lari", Body: "by **** **** shop"},
		},
		{
			name: "no mask without the tag", title: "{{.Event.product}}", body: "by {{.Event.seller}}", data: event,
			want: Message{Title: "Sepatu Lari", Body: "by judi scam shop"},
		},
		{
			name: "placeholders", title: "{{brand}} flash sale", body: "Call {{hotline}} at {{.LocalTime}}", tags: []string{"placeholders", "mask"},
			want: Message{Title: "Toko Murah flash sale", Body: "Call 1500-123 at 04:20"},
		},
		{
			name: "placeholders without the tag", title: "{{brand}} flash sale",
			err: `function "brand" not defined`,
		},
		{
			name: "event data that is no object", title: "x", data: json.RawMessage(`[1,2]`),
			err: "event data is not a JSON object",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := fajr()
			b.Reminder, b.Title, b.Body, b.Tags, b.Data, b.Translations = "sale", tt.title, tt.body, tt.tags, tt.data, nil
			m, err := c.Compose(&b.Message, Device{UserID: "42", Platform: "android", Locale: "en"})
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want.Title, m.Title)
			require.Equal(t, tt.want.Body, m.Body)
		})
	}
}

func TestPrepareCache(t *testing.T) {
	c := NewComposer(Config{CacheSize: 2})
	b1, b2 := fajr(), fajr()
	p1, err := c.Prepare(&b1.Message)
	require.NoError(t, err)
	p2, err := c.Prepare(&b2.Message)
	require.NoError(t, err)
	require.Same(t, p1, p2, "a batch with the same content reuses the prepared content")
	again, err := c.Prepare(&b1.Message)
	require.NoError(t, err)
	require.Same(t, p1, again)

	b3 := fajr()
	b3.Occurrence = 8
	p3, err := c.Prepare(&b3.Message)
	require.NoError(t, err)
	require.NotSame(t, p1, p3, "another occurrence is another batch content")
	require.Same(t, p1.c, p3.c, "of the same reminder content, compiled once")

	// Fill the cache past two generations: b1 is prepared again.
	for i := range 5 {
		b := fajr()
		b.Occurrence = int64(100 + i)
		_, err := c.Prepare(&b.Message)
		require.NoError(t, err)
	}
	p4, err := c.Prepare(&b1.Message)
	require.NoError(t, err)
	require.NotSame(t, p1, p4)
}

func TestContentKey(t *testing.T) {
	c := NewComposer(Config{})
	key := func(b *sender.Batch) string {
		k, err := c.ContentKey(&b.Message)
		require.NoError(t, err)
		return k
	}
	base := key(fajr())
	other := fajr()
	other.Reminder, other.Occurrence, other.Location = "fajr-copy", 99, "jakarta"
	require.Equal(t, base, key(other), "another reminder saying the same")

	later := fajr()
	later.FireAt = later.FireAt.Add(10 * time.Minute)
	require.NotEqual(t, base, key(later), "the body shows the time")

	tr := fajr()
	tr.Translations = map[string]message.Text{"ar": {Title: "الفجر", Body: "الفجر"}}
	require.NotEqual(t, base, key(tr), "other translations")

	repeat := fajr()
	repeat.Tags = []string{TagNoMerge}
	require.Empty(t, key(repeat), "a reminder tagged no-merge has no content key")

	ev := fajr()
	ev.Body, ev.Data = "{{.Event.missing}}", json.RawMessage(`{"a":1}`)
	k, err := c.ContentKey(&ev.Message)
	require.NoError(t, err, "a content that cannot be filled without a user still has a key")
	require.Len(t, k, 32)
}

func BenchmarkCompose(b *testing.B) {
	reg, err := NewRegistry(ProcessorsConfig{MaskWords: []string{"judi", "penipuan", "scam", "خمر"}})
	require.NoError(b, err)
	locales := []string{"ar-SA", "id-ID", "en-US", "pt_BR", "fr-FR"}
	for _, bc := range []struct {
		name string
		tags []string
		data json.RawMessage
		body string
	}{
		{name: "prayer", body: "Fajr prayer at {{.LocalTime}} in {{.Location}}"},
		{name: "event+mask", tags: []string{"mask"}, data: json.RawMessage(`{"product":"Sepatu Lari","price":1500000}`),
			body: "{{.Event.product}} Rp{{.Event.price}} mulai {{.LocalTime}}, bukan penipuan"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := NewComposer(Config{Processors: reg})
			batch := fajr()
			batch.Body, batch.Tags, batch.Data = bc.body, bc.tags, bc.data
			batch.Translations = map[string]message.Text{
				"ar": {Title: "الفجر", Body: bc.body}, "id": {Title: "Subuh", Body: bc.body}, "pt-BR": {Title: "Fajr", Body: bc.body},
			}
			devices := make([]Device, 1000)
			for i := range devices {
				devices[i] = Device{UserID: fmt.Sprint(1_000_000 + i), Platform: "android", Locale: locales[i%len(locales)]}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := c.Compose(&batch.Message, devices[i%len(devices)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("prepare", func(b *testing.B) {
		// Paid once per occurrence: the location's variables, the event, the
		// content key. The reminder's templates are compiled already.
		c := NewComposer(Config{Processors: reg})
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			batch := fajr()
			batch.Occurrence = int64(i)
			if _, err := c.Prepare(&batch.Message); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("compile", func(b *testing.B) {
		// Paid once per reminder content: templates parsed, go-i18n bundle
		// and language matcher built.
		batch := fajr()
		b.ReportAllocs()
		for b.Loop() {
			if cc := compile(Of(&batch.Message), reg); cc.err != nil {
				b.Fatal(cc.err)
			}
		}
	})
}

func TestComposeConcurrent(t *testing.T) {
	// Many goroutines compose for the same and for different batches at
	// once, as a worker's groups do; run with -race.
	c := NewComposer(Config{CacheSize: 4})
	locales := []string{"ar-SA", "id", "pt_BR", "fr", ""}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				b := fajr()
				b.Occurrence = int64(i % 10)
				m, err := c.Compose(&b.Message, Device{UserID: fmt.Sprint(g, i), Locale: locales[i%len(locales)]})
				if err == nil && m.Title == "" {
					err = fmt.Errorf("empty title for %s", locales[i%len(locales)])
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// title writes prayer names the way a sentence starts.
func TestTitle(t *testing.T) {
	for in, want := range map[string]string{"fajr": "Fajr", "last_third_of_night": "Last third of night", "": "", "ésha": "Ésha"} {
		require.Equal(t, want, title(in), in)
	}
}
