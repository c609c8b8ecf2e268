package chime_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime"
)

// CHIME_START_TIMEOUT is read from the environment (unset: 0, which Open
// takes as chime.DefaultStartTimeout); a negative value is refused with an
// error naming the variable.
func TestStartTimeoutConfig(t *testing.T) {
	c, err := chime.LoadConfig(nil)
	require.NoError(t, err)
	require.Zero(t, c.StartTimeout, "unset: Open applies chime.DefaultStartTimeout")
	require.Equal(t, time.Minute, chime.DefaultStartTimeout)
	c, err = chime.LoadConfig([]string{"CHIME_START_TIMEOUT=90s"})
	require.NoError(t, err)
	require.Equal(t, 90*time.Second, c.StartTimeout)
	_, err = chime.LoadConfig([]string{"CHIME_START_TIMEOUT=-1s"})
	require.ErrorContains(t, err, "CHIME_START_TIMEOUT")
}
