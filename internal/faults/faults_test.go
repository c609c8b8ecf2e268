package faults

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTokens(t *testing.T) {
	var ft Tokens[string]
	ft.Fail("a", "503", "429")
	ft.Fail("a", "500")
	ft.Unregister("b")

	// Queued faults come in the order they were added, then requests succeed.
	for _, want := range []string{"503", "429", "500"} {
		f, ok := ft.Next("a", "gone")
		require.True(t, ok)
		require.Equal(t, want, f)
	}
	_, ok := ft.Next("a", "gone")
	require.False(t, ok)

	// An unregistered token keeps getting the unregistered answer.
	for range 2 {
		f, ok := ft.Next("b", "gone")
		require.True(t, ok)
		require.Equal(t, "gone", f)
	}

	_, ok = ft.Next("c", "gone")
	require.False(t, ok, "a token without faults succeeds")
}
