package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSelectRuns(t *testing.T) {
	all, err := selectRuns("")
	require.NoError(t, err)
	require.Len(t, all, 8)
	some, err := selectRuns("uuid, ten_million")
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"uuid": true, "ten_million": true}, some)
	_, err = selectRuns("uuid,tenmillion")
	require.ErrorContains(t, err, `unknown run "tenmillion"`)
}
