package k8s_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A starting process serves /livez only once MySQL and then Redis answer,
// each waited for up to CHIME_START_TIMEOUT, and the coordinator also
// after its migrations, which wait up to 120s for another replica's
// migration lock (store.Migrate). The startup probes must allow all of it,
// or the kubelet restarts pods that would have come up.
func TestStartupProbesOutlastTheStartWait(t *testing.T) {
	for _, dir := range overlays(t) {
		b := build(t, dir)
		start, err := time.ParseDuration(b.config.Data["CHIME_START_TIMEOUT"])
		require.NoError(t, err, "%s: CHIME_START_TIMEOUT", dir)
		for name, d := range b.deployments {
			for _, c := range d.Spec.Template.Spec.Containers {
				what := dir + " " + name + "/" + c.Name
				p := c.StartupProbe
				require.NotNil(t, p, what)
				budget := time.Duration(p.InitialDelaySeconds+p.PeriodSeconds*p.FailureThreshold) * time.Second
				need := 2 * start
				if c.Name == "coordinator" {
					need += 120 * time.Second
				}
				require.Greater(t, budget, need, "%s: the startup probe gives up after %s, before the start can (%s)", what, budget, need)
			}
		}
	}
}
