package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chime-dev/chime/demo"
)

// Injects: nothing; runs the demo as `make run` does, with no REDIS_URL
// or MYSQL_DSN (the embedded Redis and SQLite), on 300 users. Checks:
// every user is delivered once, and the coordinator records the fire in
// its store: all three occurrences done, with every delivery counted.
func TestDemoOnEmbeddedServers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a fire")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errs bytes.Buffer
	opt := demo.Options{Users: 300, Lead: 3 * time.Second, Timeout: 45 * time.Second}
	require.NoError(t, demo.Run(ctx, opt, nil, &out, &errs), errs.String())
	var sum demo.Summary
	require.NoError(t, json.Unmarshal(out.Bytes(), &sum), out.String())
	require.Equal(t, "embedded", sum.Redis)
	require.Equal(t, "sqlite", sum.Database)
	require.Equal(t, 300, sum.Delivered)
	require.Zero(t, sum.Duplicates)
	require.Equal(t, len(demo.Locations), sum.OccurrencesDone, "occurrences recorded done")
	require.Equal(t, int64(300), sum.RecordedDelivered)
}
