package k8s_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// PrometheusRule is the Prometheus Operator's monitoring.coreos.com/v1
// PrometheusRule, as far as monitoring/ uses it; a field outside it fails
// the strict decode.
type PrometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name     string `json:"name"`
			Interval string `json:"interval,omitempty"`
			Rules    []struct {
				Alert       string            `json:"alert,omitempty"`
				Record      string            `json:"record,omitempty"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels,omitempty"`
				Annotations map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// promtool returns the path of promtool (Debian's package prometheus;
// scripts/testenv.sh installs it for make test), or skips the test.
func promtool(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (apt-get install prometheus, or run make test): Prometheus checks skipped")
	}
	return bin
}

// monitoringRule builds monitoring/ and returns its one PrometheusRule,
// decoded strictly.
func monitoringRule(t *testing.T) *PrometheusRule {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), "monitoring")
	require.NoError(t, err, "kustomize build monitoring")
	require.Len(t, res.Resources(), 1, "monitoring/ holds one PrometheusRule")
	r := res.Resources()[0]
	y, err := r.AsYAML()
	require.NoError(t, err)
	js, err := yaml.YAMLToJSON(y)
	require.NoError(t, err)
	var pr PrometheusRule
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&pr), "the PrometheusRule does not decode strictly")
	require.Equal(t, "monitoring.coreos.com/v1", pr.APIVersion)
	require.Equal(t, "PrometheusRule", pr.Kind)
	require.Equal(t, "chime", pr.Namespace)
	return &pr
}

// The PrometheusRule of monitoring/ builds with kustomize and decodes
// strictly; its groups hold alerts for the core and for the gateway, each
// with a severity and a summary; `promtool check rules` accepts them (a
// PrometheusRule wraps a rule file's groups in spec.groups); and
// `promtool test rules` runs monitoring/rules_test.yaml against them: the
// alerts fire on the series that should fire them, and only then.
func TestPrometheusRuleChecksWithPromtool(t *testing.T) {
	pr := monitoringRule(t)
	groups := map[string]int{}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "%s: an alert", g.Name)
			require.Contains(t, []string{"warning", "critical"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			groups[g.Name]++
		}
	}
	require.Positive(t, groups["chime-core"], "alerts on the core")
	require.Positive(t, groups["chime-gateway"], "alerts on the gateway")

	bin := promtool(t)
	dir := t.TempDir()
	rules, err := yaml.Marshal(map[string]any{"groups": pr.Spec.Groups})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o644))
	tests, err := os.ReadFile(filepath.Join("monitoring", "rules_test.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rules_test.yaml"), tests, 0o644))
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "rules_test.yaml"}} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %v:\n%s", args, out)
		t.Logf("promtool %v: %s", args, bytes.TrimSpace(out))
	}
}
