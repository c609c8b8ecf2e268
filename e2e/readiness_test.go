package e2e

import (
	"context"
	"database/sql"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Injects: every connection of the pool a coordinator's API and scheduler
// use is taken and held (as 200 concurrent bulk requests would hold them).
// Checks: /readyz, sampled 20 times, answers 200 each time: it pings MySQL
// over a pool of its own, so a busy pool does not take a working replica
// out of service.
func TestReadinessWhileThePoolIsBusy(t *testing.T) {
	b := setup(t)
	b.startCoordinator("c1")
	ready := func() int {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(b.apiURL + "/readyz")
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, ready())

	pool, err := b.env.DB.DB()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all := pool.Stats().MaxOpenConnections
	require.Positive(t, all)
	var held []*sql.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range all {
		c, err := pool.Conn(ctx)
		require.NoError(t, err)
		held = append(held, c)
	}
	require.Equal(t, all, pool.Stats().InUse)

	for i := range 20 {
		require.Equal(t, http.StatusOK, ready(), "sample %d", i+1)
	}
}
