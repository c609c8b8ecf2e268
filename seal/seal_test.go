package seal_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/seal"
)

func keyring(t *testing.T, ids ...string) (string, *seal.Keyring) {
	t.Helper()
	var parts []string
	for _, id := range ids {
		k, err := seal.NewKey(id)
		require.NoError(t, err)
		parts = append(parts, k)
	}
	spec := strings.Join(parts, ",")
	k, err := seal.Parse(spec)
	require.NoError(t, err)
	return spec, k
}

func TestSealOpen(t *testing.T) {
	_, k := keyring(t, "k1")
	aad := []byte("device:1:alice:web1")
	s, err := k.Seal([]byte("whsec_secret"), aad)
	require.NoError(t, err)
	require.True(t, seal.IsSealed(s))
	require.NotContains(t, s, "whsec_secret")
	require.Equal(t, "k1", seal.KeyOf(s))
	require.Equal(t, seal.SealedLen(len("whsec_secret"), "k1"), len(s))

	got, err := k.Open(s, aad)
	require.NoError(t, err)
	require.Equal(t, "whsec_secret", string(got))

	// Two seals of one value differ (random nonce).
	s2, err := k.Seal([]byte("whsec_secret"), aad)
	require.NoError(t, err)
	require.NotEqual(t, s, s2)
}

func TestOpenRefuses(t *testing.T) {
	_, k := keyring(t, "k1")
	s, err := k.Seal([]byte("v"), []byte("row-a"))
	require.NoError(t, err)

	_, err = k.Open(s, []byte("row-b"))
	require.ErrorIs(t, err, seal.ErrCorrupt, "a value moved to another row")

	flipped := []byte(s)
	flipped[len(flipped)-2] ^= 1
	_, err = k.Open(string(flipped), []byte("row-a"))
	require.ErrorIs(t, err, seal.ErrCorrupt, "an altered value")

	_, err = k.Open(s[:len(s)-10], []byte("row-a"))
	require.ErrorIs(t, err, seal.ErrCorrupt, "a truncated value")

	_, other := keyring(t, "k2")
	_, err = other.Open(s, []byte("row-a"))
	require.ErrorIs(t, err, seal.ErrUnknownKey)

	var none *seal.Keyring
	_, err = none.Open(s, []byte("row-a"))
	require.ErrorIs(t, err, seal.ErrNoKeys)
	_, err = none.Seal([]byte("v"), nil)
	require.ErrorIs(t, err, seal.ErrNoKeys)
}

func TestLegacyPlaintext(t *testing.T) {
	var none *seal.Keyring
	got, err := none.Open("whsec_old", nil)
	require.NoError(t, err)
	require.Equal(t, "whsec_old", string(got))
	require.Equal(t, "", seal.KeyOf("whsec_old"))
}

func TestRotation(t *testing.T) {
	oldSpec, old := keyring(t, "old")
	s, err := old.Seal([]byte("v"), nil)
	require.NoError(t, err)

	newKey, err := seal.NewKey("new")
	require.NoError(t, err)
	rotated, err := seal.Parse(newKey + "," + oldSpec)
	require.NoError(t, err)
	require.Equal(t, "new", rotated.Current())

	got, err := rotated.Open(s, nil)
	require.NoError(t, err, "the old key still opens what it sealed")
	require.Equal(t, "v", string(got))
	s2, err := rotated.Seal([]byte("v"), nil)
	require.NoError(t, err)
	require.Equal(t, "new", seal.KeyOf(s2))
}

func TestParse(t *testing.T) {
	k, err := seal.Parse("  ")
	require.NoError(t, err)
	require.Nil(t, k)

	good, err := seal.NewKey("a")
	require.NoError(t, err)
	for _, tc := range []struct{ spec, want string }{
		{"nokey", "want id=base64key"},
		{"=AAAA", "want id=base64key"},
		{"a b=AAAA", "want id=base64key"},
		{"toolongtoolongtoolong=AAAA", "want id=base64key"},
		{"a=AAAA", "want 32 bytes"},
		{"a=not base64!", "want 32 bytes"},
		{good + "," + good, "listed twice"},
	} {
		_, err := seal.Parse(tc.spec)
		require.ErrorContains(t, err, tc.want, tc.spec)
		require.False(t, errors.Is(err, seal.ErrNoKeys))
	}
	_, err = seal.NewKey("bad id")
	require.Error(t, err)
}
