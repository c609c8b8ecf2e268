// Package k8s_test builds every kustomize overlay under overlays/ with the
// kustomize Go API and checks what it would apply: each object decodes
// strictly (unknown fields fail) into its k8s.io/api type, or for KEDA's
// kinds into the schema subset written here; every container has probes,
// resources and a non-root read-only security context; grace periods
// exceed the drain time; the workers have exactly one autoscaler.
package k8s_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/chime-dev/chime"
)

// ScaledObject is the part of KEDA's keda.sh/v1alpha1 ScaledObject schema
// the overlays use; a field outside it fails the strict decode.
type ScaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		PollingInterval *int32 `json:"pollingInterval"`
		CooldownPeriod  *int32 `json:"cooldownPeriod"`
		MinReplicaCount *int32 `json:"minReplicaCount"`
		MaxReplicaCount *int32 `json:"maxReplicaCount"`
		Fallback        *struct {
			FailureThreshold int32 `json:"failureThreshold"`
			Replicas         int32 `json:"replicas"`
		} `json:"fallback"`
		Advanced *struct {
			HorizontalPodAutoscalerConfig *struct {
				Name     string                                         `json:"name"`
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior"`
			} `json:"horizontalPodAutoscalerConfig"`
		} `json:"advanced"`
		Triggers []struct {
			Type              string            `json:"type"`
			MetricType        string            `json:"metricType"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
			} `json:"authenticationRef"`
		} `json:"triggers"`
	} `json:"spec"`
}

// TriggerAuthentication is the part of KEDA's TriggerAuthentication schema
// the overlays use.
type TriggerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef"`
	} `json:"spec"`
}

// triggerParams are the metadata keys KEDA's scalers accept, per trigger
// type, for the types the overlays may use (keda.sh/docs/scalers).
var triggerParams = map[string][]string{
	"redis": {"address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv", "usernameFromEnv",
		"passwordFromEnv", "listName", "listLength", "activationListLength", "enableTLS", "unsafeSsl", "databaseIndex"},
	"redis-cluster": {"addresses", "addressesFromEnv", "hosts", "hostsFromEnv", "ports", "portsFromEnv",
		"usernameFromEnv", "passwordFromEnv", "listName", "listLength", "activationListLength", "enableTLS", "unsafeSsl"},
	"cpu":        {"type", "value", "containerName"},
	"prometheus": {"serverAddress", "query", "threshold", "activationThreshold", "namespace", "authModes", "ignoreNullValues", "unsafeSsl"},
}

// kinds maps apiVersion/kind to a new value of its type.
var kinds = map[string]func() any{
	"v1/Namespace":                           func() any { return new(corev1.Namespace) },
	"v1/ConfigMap":                           func() any { return new(corev1.ConfigMap) },
	"v1/Service":                             func() any { return new(corev1.Service) },
	"apps/v1/Deployment":                     func() any { return new(appsv1.Deployment) },
	"batch/v1/Job":                           func() any { return new(batchv1.Job) },
	"policy/v1/PodDisruptionBudget":          func() any { return new(policyv1.PodDisruptionBudget) },
	"networking.k8s.io/v1/NetworkPolicy":     func() any { return new(networkingv1.NetworkPolicy) },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"keda.sh/v1alpha1/ScaledObject":          func() any { return new(ScaledObject) },
	"keda.sh/v1alpha1/TriggerAuthentication": func() any { return new(TriggerAuthentication) },
}

// built is one overlay's objects, decoded.
type built struct {
	config      *corev1.ConfigMap
	deployments map[string]*appsv1.Deployment
	jobs        []*batchv1.Job
	services    []*corev1.Service
	pdbs        []*policyv1.PodDisruptionBudget
	policies    []*networkingv1.NetworkPolicy
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	scaled      []*ScaledObject
	auths       map[string]*TriggerAuthentication
}

// overlays lists the overlay directories.
func overlays(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("overlays")
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join("overlays", e.Name()))
		}
	}
	require.ElementsMatch(t, []string{"overlays/dev", "overlays/prod"}, out)
	return out
}

// build runs kustomize on dir and decodes every object strictly.
func build(t *testing.T, dir string) *built {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	require.NoError(t, err, "kustomize build %s", dir)
	b := &built{deployments: map[string]*appsv1.Deployment{}, auths: map[string]*TriggerAuthentication{}}
	for _, r := range res.Resources() {
		y, err := r.AsYAML()
		require.NoError(t, err)
		js, err := yaml.YAMLToJSON(y)
		require.NoError(t, err)
		gvk := r.GetGvk()
		key := gvk.Kind
		if gvk.Group != "" {
			key = gvk.Group + "/" + gvk.Version + "/" + key
		} else {
			key = gvk.Version + "/" + key
		}
		mk, ok := kinds[key]
		require.True(t, ok, "%s: unexpected object %s %s", dir, key, r.GetName())
		obj := mk()
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(obj), "%s: %s %s does not decode strictly", dir, key, r.GetName())
		switch o := obj.(type) {
		case *corev1.ConfigMap:
			b.config = o
		case *appsv1.Deployment:
			b.deployments[o.Name] = o
		case *batchv1.Job:
			b.jobs = append(b.jobs, o)
		case *corev1.Service:
			b.services = append(b.services, o)
		case *policyv1.PodDisruptionBudget:
			b.pdbs = append(b.pdbs, o)
		case *networkingv1.NetworkPolicy:
			b.policies = append(b.policies, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			b.hpas = append(b.hpas, o)
		case *ScaledObject:
			b.scaled = append(b.scaled, o)
		case *TriggerAuthentication:
			b.auths[o.Name] = o
		}
	}
	require.NotNil(t, b.config, "%s: no ConfigMap", dir)
	return b
}

// configKeys are the environment variables chime.Config reads, nested
// settings structs included.
func configKeys() map[string]bool {
	out := map[string]bool{}
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if name := f.Tag.Get("env"); name != "" {
				out[name] = true
			} else if f.Type.Kind() == reflect.Struct && f.IsExported() {
				walk(f.Type)
			}
		}
	}
	walk(reflect.TypeFor[chime.Config]())
	return out
}

func TestOverlaysBuildAndDecodeStrictly(t *testing.T) {
	for _, dir := range overlays(t) {
		t.Run(dir, func(t *testing.T) {
			b := build(t, dir)
			for _, name := range []string{"chime-coordinator", "chime-worker", "chime-gateway"} {
				require.Contains(t, b.deployments, name)
			}
			require.GreaterOrEqual(t, *b.deployments["chime-coordinator"].Spec.Replicas, int32(2),
				"coordinators: one leads, the other stands by")
			keys := configKeys()
			for k := range b.config.Data {
				require.True(t, keys[k], "%s: ConfigMap key %s is not a setting of chime.Config", dir, k)
			}
			// The processes accept the ConfigMap as it is.
			environ := []string{"REDIS_URL=redis://redis:6379/0", "MYSQL_DSN=chime:pw@tcp(mysql:3306)/chime"}
			for k, v := range b.config.Data {
				environ = append(environ, k+"="+v)
			}
			_, err := chime.LoadConfig(environ)
			require.NoError(t, err, "%s: the ConfigMap's settings", dir)
			// Every other setting is in the ConfigMap, where operators find
			// it: all but the secrets and the per-pod replica ID.
			notHere := map[string]bool{"REDIS_URL": true, "MYSQL_DSN": true, "CHIME_WEBHOOK_URL": true,
				"CHIME_WEBHOOK_SECRET": true, "CHIME_SECRET_KEYS": true, "CHIME_REPLICA_ID": true, "CHIME_OPERATOR_KEY": true}
			for k := range keys {
				if notHere[k] {
					require.NotContains(t, b.config.Data, k, "%s: %s belongs in chime-secrets or the pod spec", dir, k)
				} else {
					require.Contains(t, b.config.Data, k, "%s: setting %s missing from the ConfigMap", dir, k)
				}
			}
		})
	}
}

// podSpecs returns every workload's pod template by name.
func (b *built) podSpecs() map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for n, d := range b.deployments {
		out[n] = &d.Spec.Template
	}
	for _, j := range b.jobs {
		out[j.Name] = &j.Spec.Template
	}
	return out
}

func TestContainersHaveResourcesAndLockedDownSecurity(t *testing.T) {
	for _, dir := range overlays(t) {
		b := build(t, dir)
		for name, pod := range b.podSpecs() {
			what := dir + " " + name
			psc := pod.Spec.SecurityContext
			require.NotNil(t, psc, what)
			require.True(t, psc.RunAsNonRoot != nil && *psc.RunAsNonRoot, "%s: runAsNonRoot", what)
			require.True(t, psc.RunAsUser != nil && *psc.RunAsUser != 0, "%s: runAsUser", what)
			require.NotNil(t, psc.SeccompProfile, what)
			require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type, what)
			require.False(t, pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken,
				"%s: no API token needed", what)
			require.NotEmpty(t, pod.Spec.Containers, what)
			for _, c := range pod.Spec.Containers {
				what := what + "/" + c.Name
				sc := c.SecurityContext
				require.NotNil(t, sc, what)
				require.True(t, sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem, "%s: read-only root", what)
				require.True(t, sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation, "%s: no privilege escalation", what)
				require.NotNil(t, sc.Capabilities, what)
				require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, what)
				require.Empty(t, sc.Capabilities.Add, what)
				for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					req, ok := c.Resources.Requests[r]
					require.True(t, ok, "%s: %s request", what, r)
					lim, ok := c.Resources.Limits[r]
					require.True(t, ok, "%s: %s limit", what, r)
					require.LessOrEqual(t, req.Cmp(lim), 0, "%s: %s request above its limit", what, r)
				}
				// Every process reads the shared settings and secrets.
				var refs []string
				for _, e := range c.EnvFrom {
					switch {
					case e.ConfigMapRef != nil:
						refs = append(refs, "configmap/"+e.ConfigMapRef.Name)
					case e.SecretRef != nil:
						refs = append(refs, "secret/"+e.SecretRef.Name)
					}
				}
				require.ElementsMatch(t, []string{"configmap/" + b.config.Name, "secret/chime-secrets"}, refs, what)
			}
		}
	}
}

// portOf returns the container port a probe's named port refers to.
func portOf(t *testing.T, c corev1.Container, p *corev1.Probe) int32 {
	t.Helper()
	require.NotNil(t, p.HTTPGet, c.Name)
	for _, cp := range c.Ports {
		if cp.Name == p.HTTPGet.Port.String() || cp.ContainerPort == p.HTTPGet.Port.IntVal {
			return cp.ContainerPort
		}
	}
	t.Fatalf("%s: probe port %s is not a port of the container", c.Name, p.HTTPGet.Port.String())
	return 0
}

func TestDeploymentsProbeLivezAndReadyz(t *testing.T) {
	for _, dir := range overlays(t) {
		b := build(t, dir)
		for name, d := range b.deployments {
			for _, c := range d.Spec.Template.Spec.Containers {
				what := dir + " " + name + "/" + c.Name
				require.NotNil(t, c.LivenessProbe, what)
				require.NotNil(t, c.ReadinessProbe, what)
				require.NotNil(t, c.StartupProbe, what)
				require.Equal(t, "/livez", c.LivenessProbe.HTTPGet.Path, "%s: liveness checks no dependency", what)
				require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path, "%s: readiness checks Redis and MySQL", what)
				require.Equal(t, "/livez", c.StartupProbe.HTTPGet.Path, what)
				port := portOf(t, c, c.LivenessProbe)
				require.Equal(t, port, portOf(t, c, c.ReadinessProbe), what)
				// The probed port is the one the process serves them on.
				want := map[string]string{"coordinator": "CHIME_HTTP_ADDR", "gateway": "CHIME_METRICS_ADDR", "worker": "CHIME_METRICS_ADDR"}[c.Name]
				require.NotEmpty(t, want, what)
				require.Equal(t, fmt.Sprintf(":%d", port), b.config.Data[want], "%s: probes on %s", what, want)
				// /readyz answers within its 2s deadline per check.
				require.GreaterOrEqual(t, c.ReadinessProbe.TimeoutSeconds, int32(3), what)
			}
		}
	}
}

func TestGracePeriodsExceedTheDrainTime(t *testing.T) {
	for _, dir := range overlays(t) {
		b := build(t, dir)
		drain, err := time.ParseDuration(b.config.Data["CHIME_SHUTDOWN_TIMEOUT"])
		require.NoError(t, err, "%s: CHIME_SHUTDOWN_TIMEOUT", dir)
		for name, d := range b.deployments {
			grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds
			require.NotNil(t, grace, name)
			// A stopping worker waits up to the drain time for the chunks in
			// hand, then releases its groups and exits; five seconds more
			// covers the release and the exit.
			require.Greater(t, time.Duration(*grace)*time.Second, drain+5*time.Second,
				"%s %s: terminationGracePeriodSeconds %d does not exceed the drain time %s", dir, name, *grace, drain)
		}
	}
}

func TestEveryDeploymentHasAServiceAndADisruptionBudget(t *testing.T) {
	for _, dir := range overlays(t) {
		b := build(t, dir)
		for name, d := range b.deployments {
			pods := labels.Set(d.Spec.Template.Labels)
			sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
			require.NoError(t, err)
			require.True(t, sel.Matches(pods), "%s %s: selector does not match its pods", dir, name)
			var pdbs, services int
			for _, p := range b.pdbs {
				s, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
				require.NoError(t, err)
				if s.Matches(pods) {
					pdbs++
					require.True(t, p.Spec.MaxUnavailable != nil || p.Spec.MinAvailable != nil, p.Name)
				}
			}
			for _, s := range b.services {
				if labels.SelectorFromSet(s.Spec.Selector).Matches(pods) {
					services++
				}
			}
			require.Equal(t, 1, pdbs, "%s %s: PodDisruptionBudgets", dir, name)
			require.Equal(t, 1, services, "%s %s: Services", dir, name)
		}
		// Ingress is denied unless a policy lets it in.
		var denyAll bool
		for _, p := range b.policies {
			if len(p.Spec.Ingress) == 0 && slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
				denyAll = true
			}
		}
		require.True(t, denyAll, "%s: a default-deny ingress NetworkPolicy", dir)
		// The migration Job runs `chime migrate`.
		require.Len(t, b.jobs, 1, dir)
		require.Equal(t, []string{"/usr/local/bin/chime", "migrate"}, b.jobs[0].Spec.Template.Spec.Containers[0].Command)
	}
}

func TestWorkersHaveExactlyOneAutoscaler(t *testing.T) {
	for _, dir := range overlays(t) {
		b := build(t, dir)
		var hpa, keda int
		for _, h := range b.hpas {
			if h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == "chime-worker" {
				hpa++
				require.NotEmpty(t, h.Spec.Metrics, h.Name)
				require.Equal(t, corev1.ResourceCPU, h.Spec.Metrics[0].Resource.Name, "the fallback autoscaler is on CPU")
			}
		}
		for _, s := range b.scaled {
			if s.Spec.ScaleTargetRef.Name != "chime-worker" {
				continue
			}
			keda++
			require.GreaterOrEqual(t, *s.Spec.MinReplicaCount, int32(1), s.Name)
			var types []string
			for _, tr := range s.Spec.Triggers {
				allowed, ok := triggerParams[tr.Type]
				require.True(t, ok, "%s: trigger type %q", dir, tr.Type)
				for k := range tr.Metadata {
					require.Contains(t, allowed, k, "%s: %s trigger parameter %q", dir, tr.Type, k)
				}
				if tr.Type == "redis" || tr.Type == "redis-cluster" {
					// The queue's pending list, as asynq names it.
					require.Equal(t, "asynq:{"+b.config.Data["CHIME_QUEUE"]+"}:pending", tr.Metadata["listName"], dir)
					require.NotNil(t, tr.AuthenticationRef, dir)
					require.Contains(t, b.auths, tr.AuthenticationRef.Name, "%s: TriggerAuthentication", dir)
				}
				types = append(types, tr.Type)
			}
			require.Contains(t, types, "redis", "%s: scaled on queue depth", dir)
			require.Contains(t, types, "cpu", "%s: CPU as the fallback signal", dir)
		}
		// KEDA makes an HPA of its own: one autoscaler per overlay.
		require.Equal(t, 1, hpa+keda, "%s: HPAs %d, ScaledObjects %d on chime-worker", dir, hpa, keda)
		require.Nil(t, b.deployments["chime-worker"].Spec.Replicas, "%s: the autoscaler owns the workers' replica count", dir)
	}
}

func TestImageCommandsAreBinariesOfThisRepository(t *testing.T) {
	for _, dir := range overlays(t) {
		b := build(t, dir)
		for name, pod := range b.podSpecs() {
			for _, c := range pod.Spec.Containers {
				require.True(t, strings.HasPrefix(c.Image, "ghcr.io/chime-dev/chime:"), "%s %s: one image for every process", dir, name)
				require.NotEmpty(t, c.Command, name)
				bin, ok := strings.CutPrefix(c.Command[0], "/usr/local/bin/")
				require.True(t, ok, "%s: the Dockerfile puts binaries in /usr/local/bin", name)
				_, err := os.Stat(filepath.Join("..", "..", "cmd", bin))
				require.NoError(t, err, "%s %s: no command cmd/%s", dir, name, bin)
			}
		}
	}
}
