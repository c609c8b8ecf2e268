package content

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMask(t *testing.T) {
	m := NewMasker([]string{
		"judi", "penipuan", "scam", "STRASSE", // Indonesian: gambling, fraud
		"خمر", "ربا", // Arabic: wine, usury
		"judi online", "free money",
	})
	tests := []struct {
		name, in, want string
	}{
		{"indonesian flash sale", "Flash sale jam 12:00! Diskon 70%, bukan judi, bukan penipuan.",
			"Flash sale jam 12:00! Diskon 70%, bukan ****, bukan ********."},
		{"case-insensitive", "Ini bukan JUDI. Judi? tidak!", "Ini bukan ****. ****? tidak!"},
		{"whole words only", "Dijudikan and scampi and judiciary stay", "Dijudikan and scampi and judiciary stay"},
		{"phrase across separators", "Stop judi  online sekarang", "Stop ****  ****** sekarang"},
		{"phrase wins over word", "Judi-Online dilarang", "****-****** dilarang"},
		{"english phrase", "Get FREE money now, no scam!", "Get **** ***** now, no ****!"},
		{"unicode case folding", "Straße", "******"},
		{"arabic word", "لا تشتري الخمر ولا خمر في الحفل", "لا تشتري الخمر ولا *** في الحفل"},
		{"arabic with vowel marks", "ابتعد عن الرِّبا وعن رِبا الفضل", "ابتعد عن الرِّبا وعن *** الفضل"},
		{"arabic tatweel", "هذا خـمـر", "هذا ***"},
		{"prayer reminder untouched", "حان الآن موعد صلاة الفجر في الرياض", "حان الآن موعد صلاة الفجر في الرياض"},
		{"nothing listed", "Fajr in 10 minutes", "Fajr in 10 minutes"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, m.Mask(tt.in))
		})
	}
}

func TestMaskNoWords(t *testing.T) {
	require.Equal(t, "judi", NewMasker(nil).Mask("judi"))
}

func TestPlaceholders(t *testing.T) {
	p, err := NewPlaceholders(map[string]string{"brand": "Toko \"Murah\" {{.User}}", "hotline": "1500-123"})
	require.NoError(t, err)
	tests := []struct{ in, want string }{
		{"Flash sale at {{brand}}", `Flash sale at {{"Toko \"Murah\" {{.User}}"}}`},
		{"Call {{ hotline }} or {{-brand-}}", `Call {{"1500-123"}} or {{"Toko \"Murah\" {{.User}}"}}`},
		{"{{unknown}} and {{.Location}} stay", "{{unknown}} and {{.Location}} stay"},
		{"no placeholders", "no placeholders"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, p.Fill(tt.in), tt.in)
	}
	for _, bad := range []string{"end", "upper", "if", "with space", "9lives"} {
		_, err := NewPlaceholders(map[string]string{bad: "x"})
		require.Error(t, err, bad)
	}
}

func TestNewRegistry(t *testing.T) {
	file := filepath.Join(t.TempDir(), "words.txt")
	require.NoError(t, os.WriteFile(file, []byte("# sensitive words\njudi\n\n  penipuan  \n"), 0o600))
	r, err := NewRegistry(ProcessorsConfig{MaskWords: ParseWordList("scam, free money\nربا"), MaskFile: file})
	require.NoError(t, err)
	require.Equal(t, []string{TagPlaceholders, TagMask}, r.Tags())
	_, text := r.stages([]string{"mask", "promo"})
	require.Len(t, text, 1)
	require.Equal(t, "**** ******** ****, **** ***** ***", text[0]("judi penipuan scam, free money ربا"))
	source, text := r.stages([]string{"promo"})
	require.Empty(t, source)
	require.Empty(t, text)

	_, err = NewRegistry(ProcessorsConfig{MaskFile: filepath.Join(t.TempDir(), "missing.txt")})
	require.ErrorContains(t, err, "mask words")
}

func TestParsePlaceholders(t *testing.T) {
	m, err := ParsePlaceholders(`{"brand":"Chime Mart"}`)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"brand": "Chime Mart"}, m)
	m, err = ParsePlaceholders(" ")
	require.NoError(t, err)
	require.Nil(t, m)
	_, err = ParsePlaceholders(`brand=x`)
	require.Error(t, err)
}
