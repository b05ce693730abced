// Package contract runs Argo Rollouts' own analysis controller, Web metric provider and
// condition evaluation against a live `canarypilot serve`, and checks which phase each
// measurement, each metric and the AnalysisRun end in.
//
// Nothing here re-implements Argo: the AnalysisRun is reconciled by
// github.com/argoproj/argo-rollouts/analysis.Controller (pinned in go.mod) over fake
// Kubernetes clientsets, exactly as the controller does in a cluster. The cases (which
// AnalysisTemplate, which arguments, which phases to expect) come from the pytest
// wrapper tests/contract/argo/test_argo_contract.py, which also starts Prometheus and the
// analysis service:
//
//	CANARYPILOT_CONTRACT_CASES=/path/cases.json go test ./...
package contract

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	log "github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeinformers "k8s.io/client-go/informers"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/yaml"

	"github.com/argoproj/argo-rollouts/analysis"
	"github.com/argoproj/argo-rollouts/controller/metrics"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/pkg/client/clientset/versioned/fake"
	informers "github.com/argoproj/argo-rollouts/pkg/client/informers/externalversions"
	analysisutil "github.com/argoproj/argo-rollouts/utils/analysis"
	"github.com/argoproj/argo-rollouts/utils/queue"
	"github.com/argoproj/argo-rollouts/utils/record"
)

const namespace = "contract"

// Case is one AnalysisRun to reconcile and what Argo must conclude.
type Case struct {
	Name     string            `json:"name"`
	Template string            `json:"template"` // path of an AnalysisTemplate YAML document
	Args     map[string]string `json:"args"`
	// Secrets are created in the namespace first (name -> key -> value), for
	// arguments taken from a Secret (the bearer token).
	Secrets map[string]map[string]string `json:"secrets"`
	// Durations replaces a metric's interval and initialDelay so a case runs in seconds;
	// counts, limits, conditions and URLs stay as rendered.
	Durations map[string]Durations `json:"durations"`
	Expect    Expect               `json:"expect"`
	TimeoutS  int                  `json:"timeout_seconds"`
}

type Durations struct {
	Interval     string `json:"interval"`
	InitialDelay string `json:"initialDelay"`
}

type Expect struct {
	Run     string                    `json:"run"`
	Metrics map[string]MetricExpected `json:"metrics"`
}

type MetricExpected struct {
	Phase string `json:"phase"`
	// Measurements lists the phase of every measurement taken, in order; when
	// FirstMeasurements is set instead, only that prefix is checked.
	Measurements      []string `json:"measurements"`
	FirstMeasurements []string `json:"first_measurements"`
	// Value, when set, is the jsonPath value the last measurement must hold.
	Value *string `json:"value"`
}

func loadCases(t *testing.T) []Case {
	path := os.Getenv("CANARYPILOT_CONTRACT_CASES")
	if path == "" {
		t.Skip("CANARYPILOT_CONTRACT_CASES is not set: run through tests/contract/argo/test_argo_contract.py")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read cases: %v", err)
	}
	var cases []Case
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatalf("parse cases: %v", err)
	}
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	return cases
}

func loadTemplate(t *testing.T, path string) *v1alpha1.AnalysisTemplate {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read template: %v", err)
	}
	var tmpl v1alpha1.AnalysisTemplate
	// Strict: a field Argo does not know (the article's `timeout`) must fail loudly
	// here rather than be pruned silently as the API server would.
	if err := yaml.UnmarshalStrict(data, &tmpl); err != nil {
		t.Fatalf("template %s does not decode into Argo's AnalysisTemplate: %v", path, err)
	}
	if err := analysisutil.ValidateMetrics(tmpl.Spec.Metrics); err != nil {
		t.Fatalf("template %s is rejected by Argo's validation: %v", path, err)
	}
	return &tmpl
}

// harness is one analysis controller over fake clientsets, running until the test ends.
type harness struct {
	argo *fake.Clientset
	kube *k8sfake.Clientset
}

func startController(t *testing.T) *harness {
	log.SetLevel(log.WarnLevel)
	h := &harness{argo: fake.NewSimpleClientset(), kube: k8sfake.NewSimpleClientset()}
	argoInformers := informers.NewSharedInformerFactory(h.argo, 0)
	kubeInformers := kubeinformers.NewSharedInformerFactory(h.kube, 0)
	ctrl := analysis.NewController(analysis.ControllerConfig{
		KubeClientSet:        h.kube,
		ArgoProjClientset:    h.argo,
		AnalysisRunInformer:  argoInformers.Argoproj().V1alpha1().AnalysisRuns(),
		JobInformer:          kubeInformers.Batch().V1().Jobs(),
		ResyncPeriod:         0,
		AnalysisRunWorkQueue: workqueue.NewNamedRateLimitingQueue(queue.DefaultArgoRolloutsRateLimiter(), "AnalysisRuns"),
		MetricsServer: metrics.NewMetricsServer(metrics.ServerConfig{
			Addr:               "127.0.0.1:0",
			K8SRequestProvider: &metrics.K8sRequestsCountProvider{},
		}),
		Recorder: record.NewFakeEventRecorder(),
	})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	argoInformers.Start(ctx.Done())
	kubeInformers.Start(ctx.Done())
	argoInformers.WaitForCacheSync(ctx.Done())
	kubeInformers.WaitForCacheSync(ctx.Done())
	go func() { _ = ctrl.Run(ctx, 4) }()
	return h
}

func TestArgoAnalysisAgainstCanarypilot(t *testing.T) {
	cases := loadCases(t)
	h := startController(t)
	for _, c := range cases {
		c := c
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			run := h.analyse(t, c)
			check(t, c, run)
		})
	}
}

func (h *harness) analyse(t *testing.T, c Case) *v1alpha1.AnalysisRun {
	ctx := context.Background()
	for name, data := range c.Secrets {
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
		secret.Data = map[string][]byte{}
		for k, v := range data {
			secret.Data[k] = []byte(v)
		}
		if _, err := h.kube.CoreV1().Secrets(namespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
			t.Logf("secret %s: %v", name, err) // shared by cases: already there is fine
		}
	}
	tmpl := loadTemplate(t, c.Template)
	for i := range tmpl.Spec.Metrics {
		m := &tmpl.Spec.Metrics[i]
		if d, ok := c.Durations[m.Name]; ok {
			if d.Interval != "" {
				m.Interval = v1alpha1.DurationString(d.Interval)
			}
			if d.InitialDelay != "" {
				m.InitialDelay = v1alpha1.DurationString(d.InitialDelay)
			}
		}
	}
	var args []v1alpha1.Argument
	for k, v := range c.Args {
		v := v
		args = append(args, v1alpha1.Argument{Name: k, Value: &v})
	}
	run, err := analysisutil.NewAnalysisRunFromTemplates(
		[]*v1alpha1.AnalysisTemplate{tmpl}, nil, args, nil, nil, nil, nil, c.Name, "", namespace)
	if err != nil {
		t.Fatalf("Argo refused to build the AnalysisRun: %v", err)
	}
	if _, err := h.argo.ArgoprojV1alpha1().AnalysisRuns(namespace).Create(ctx, run, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create AnalysisRun: %v", err)
	}
	timeout := time.Duration(c.TimeoutS) * time.Second
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		got, err := h.argo.ArgoprojV1alpha1().AnalysisRuns(namespace).Get(ctx, c.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get AnalysisRun: %v", err)
		}
		if got.Status.Phase.Completed() {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("AnalysisRun still %q after %s: %s", got.Status.Phase, timeout, describe(got))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func check(t *testing.T, c Case, run *v1alpha1.AnalysisRun) {
	t.Logf("%s", describe(run))
	if string(run.Status.Phase) != c.Expect.Run {
		t.Errorf("AnalysisRun phase %q, want %q (%s)", run.Status.Phase, c.Expect.Run, run.Status.Message)
	}
	for name, want := range c.Expect.Metrics {
		result := analysisutil.GetResult(run, name)
		if result == nil {
			t.Errorf("metric %s: no result", name)
			continue
		}
		if string(result.Phase) != want.Phase {
			t.Errorf("metric %s phase %q, want %q", name, result.Phase, want.Phase)
		}
		var phases []string
		for _, m := range result.Measurements {
			phases = append(phases, string(m.Phase))
		}
		switch {
		case want.Measurements != nil:
			if fmt.Sprint(phases) != fmt.Sprint(want.Measurements) {
				t.Errorf("metric %s measurements %v, want %v", name, phases, want.Measurements)
			}
		case want.FirstMeasurements != nil:
			if len(phases) < len(want.FirstMeasurements) ||
				fmt.Sprint(phases[:len(want.FirstMeasurements)]) != fmt.Sprint(want.FirstMeasurements) {
				t.Errorf("metric %s measurements %v, want them to start with %v", name, phases, want.FirstMeasurements)
			}
		}
		if want.Value != nil && len(result.Measurements) > 0 {
			last := result.Measurements[len(result.Measurements)-1]
			if last.Value != *want.Value {
				t.Errorf("metric %s last value %q, want %q", name, last.Value, *want.Value)
			}
		}
	}
}

func describe(run *v1alpha1.AnalysisRun) string {
	out := fmt.Sprintf("run %s: %s", run.Name, run.Status.Phase)
	for _, r := range run.Status.MetricResults {
		out += fmt.Sprintf("\n  metric %s: %s (count %d, failed %d, inconclusive %d, errors %d)",
			r.Name, r.Phase, r.Count, r.Failed, r.Inconclusive, r.Error)
		for _, m := range r.Measurements {
			out += fmt.Sprintf("\n    %s value=%q %s", m.Phase, m.Value, m.Message)
		}
	}
	return out
}
