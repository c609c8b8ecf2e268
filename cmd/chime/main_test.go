package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/seal"
)

// TestSecretKeyNew checks that the printed entry is one CHIME_SECRET_KEYS
// accepts and that a bad ID is refused in one line.
func TestSecretKeyNew(t *testing.T) {
	var out, errOut bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"secret-key", "new", "k2026"}, nil, &out, &errOut))
	line := strings.TrimSpace(out.String())
	require.True(t, strings.HasPrefix(line, "k2026="), line)
	k, err := seal.Parse(line)
	require.NoError(t, err)
	require.Equal(t, "k2026", k.Current())

	err = run(context.Background(), []string{"secret-key", "new", "bad id"}, nil, &out, &errOut)
	require.ErrorContains(t, err, "want 1-16 letters")
	require.NotContains(t, err.Error(), "\n")
}
