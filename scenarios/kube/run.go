package kube

import (
	"github.com/meshbench/meshbench/scenarios/platform"

	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshbench/meshbench/loadgen"
	"github.com/meshbench/meshbench/reports/result"
	"github.com/meshbench/meshbench/scenarios"
	"github.com/meshbench/meshbench/scenarios/proxymetrics"
)

// measurement is what one Run observed of the proxies.
type measurement struct {
	requests int64
	window   time.Duration // the measured part, as the runner saw it
	proxies  []*proxyWatch
}

// proxyWatch follows one proxy container through the measured part.
type proxyWatch struct {
	name, kind, planNode string
	pod, node            string // the cluster's pod and node
	container            string

	mu        sync.Mutex
	samples   []statSample
	sampleErr error
	start     proxymetrics.Families
	end       proxymetrics.Families
	scrapeErr error
}

// Run creates the load generator's Job and follows it through the API
// server's pod proxy: at the start of the measured part it scrapes every
// proxy's /metrics, starts sampling the kubelets' container stats and
// applies the plan's events; when the load is done it scrapes again, and
// fetches the result and the histogram log into the cell directory.
func (p *Platform) Run(ctx context.Context) (*result.CellResult, error) {
	plan := p.plan
	if plan == nil {
		return nil, errors.New("running: nothing deployed")
	}
	p.last = nil
	gens := platform.GeneratorLoads(plan.Load)
	start := time.Now().Add(generatorLead)
	for _, g := range gens {
		job, err := loadJob(plan, p.t, g, start)
		if err != nil {
			return nil, fmt.Errorf("running: %w", err)
		}
		if err := p.record(job); err != nil {
			return nil, fmt.Errorf("running: %w", err)
		}
		if err := p.create(ctx, job); err != nil {
			return nil, fmt.Errorf("running: %w", err)
		}
	}
	loads, err := p.waitPods(ctx, RoleLoad, len(gens))
	if err != nil {
		return nil, fmt.Errorf("running: the load generator: %w", err)
	}
	loadPods := make([]string, len(gens)) // by generator
	for _, pod := range loads {
		for i, g := range gens {
			if pod.Labels[LabelGenerator] == g.Name {
				loadPods[i] = pod.Name
			}
		}
	}
	m := &measurement{}
	if m.proxies, err = p.watches(ctx, loads); err != nil {
		return nil, fmt.Errorf("running: %w", err)
	}

	var stopSampling func()
	var events func() ([]result.Event, error)
	stopEvents := func() {}
	var measured time.Time
	defer func() {
		if stopSampling != nil {
			stopSampling()
		}
		stopEvents()
	}()
	for {
		st, err := p.loadStatuses(ctx, loadPods)
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err == nil && st.Phase == loadgen.PhaseFailed {
			return nil, fmt.Errorf("running: the load generator failed: %s", st.Error)
		}
		if err == nil && st.Phase != loadgen.PhaseWarmup && measured.IsZero() {
			measured = time.Now()
			for _, w := range m.proxies {
				if p.t.Peer == nil { // a peer's metrics are not meshproxy's series
					w.start, w.scrapeErr = p.scrape(ctx, w)
				}
			}
			stopSampling = p.sample(m.proxies)
			evCtx, cancel := context.WithCancel(ctx)
			stopEvents = cancel
			events = platform.ApplyEvents(evCtx, plan.Events, measured, p.applyEvent)
		}
		if err == nil && st.Phase == loadgen.PhaseDone {
			break
		}
		if err != nil {
			for _, pod := range loadPods {
				if why := p.loadPodFailed(ctx, pod); why != "" {
					return nil, fmt.Errorf("running: the load generator %s: %s", pod, why)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	m.window = time.Since(measured)
	stopSampling()
	stopSampling = nil
	stopEvents()
	var records []result.Event
	var evErr error
	if events != nil {
		records, evErr = events()
	}
	for _, w := range m.proxies {
		if w.scrapeErr == nil && p.t.Peer == nil {
			w.end, w.scrapeErr = p.scrape(ctx, w)
		}
	}
	for i, g := range gens {
		if err := p.fetchResult(ctx, loadPods[i], g); err != nil {
			return nil, fmt.Errorf("running: %w", err)
		}
	}
	res, err := platform.MergeGenerators(p.dir, loadResultFile, gens)
	if err != nil {
		return nil, fmt.Errorf("running: %w", err)
	}
	if err := p.checkBackends(ctx); err != nil {
		return nil, fmt.Errorf("running: %w", err)
	}
	for _, pod := range loadPods {
		if err := p.loadPost(ctx, pod, "exit"); err != nil {
			p.log.Warn("the load generator did not take its exit", "pod", pod, "err", err)
		}
	}
	if evErr != nil {
		return nil, fmt.Errorf("running: %w", evErr)
	}
	m.requests = res.Requests
	p.last = m
	return &result.CellResult{Result: *res, Events: records, Notes: p.t.Notes}, nil
}

// fetchResult copies a load generator's result and histogram log into
// the cell directory (named for generator g).
func (p *Platform) fetchResult(ctx context.Context, pod string, g platform.Generator) error {
	for _, name := range []string{loadResultFile, result.HdrLogFile} {
		b, err := p.podGet(ctx, pod, PortLoad, "files/"+name)
		if err != nil {
			return fmt.Errorf("fetching the load generator's %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(p.dir, platform.GeneratorFile(name, g)), b, 0o644); err != nil {
			return fmt.Errorf("writing the load generator's %s: %w", name, err)
		}
	}
	return nil
}

// generatorLead is how far in the future the common start of the load
// generators is: time for their pods to be scheduled and start.
const generatorLead = 20 * time.Second

// loadStatuses is the load generators' status together: failed if one
// failed, warm-up while one warms up, done when all are.
func (p *Platform) loadStatuses(ctx context.Context, pods []string) (loadgen.Status, error) {
	out := loadgen.Status{Phase: loadgen.PhaseDone}
	rank := map[string]int{loadgen.PhaseDone: 0, loadgen.PhaseMeasuring: 1, loadgen.PhaseWarmup: 2, loadgen.PhaseFailed: 3}
	for _, pod := range pods {
		st, err := p.loadStatus(ctx, pod)
		if err != nil {
			return st, err
		}
		if rank[st.Phase] > rank[out.Phase] {
			out.Phase, out.Error = st.Phase, st.Error
		}
	}
	return out, nil
}

func (p *Platform) loadStatus(ctx context.Context, pod string) (loadgen.Status, error) {
	var st loadgen.Status
	b, err := p.podGet(ctx, pod, PortLoad, "status")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("decoding the load generator's status %q: %w", b, err)
	}
	return st, nil
}

// loadPodFailed says why the load generator's pod ended or cannot run,
// or "".
func (p *Platform) loadPodFailed(ctx context.Context, name string) string {
	pod, err := p.cs.CoreV1().Pods(p.t.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	for _, s := range pod.Status.ContainerStatuses {
		if s.Name == "load" && s.State.Terminated != nil {
			return fmt.Sprintf("exited %d (%s) before its result was fetched", s.State.Terminated.ExitCode, s.State.Terminated.Reason)
		}
	}
	return stuck(*pod)
}

// podGet reads path from a pod's port through the API server's pod proxy.
func (p *Platform) podGet(ctx context.Context, pod string, port int, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return p.rc.Get().Namespace(p.t.Namespace).Resource("pods").Name(pod + ":" + strconv.Itoa(port)).
		SubResource("proxy").Suffix(path).DoRaw(ctx)
}

func (p *Platform) loadPost(ctx context.Context, pod, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := p.rc.Post().Namespace(p.t.Namespace).Resource("pods").Name(pod + ":" + strconv.Itoa(PortLoad)).
		SubResource("proxy").Suffix(path).DoRaw(ctx)
	return err
}

// watches finds the pod and container of every proxy of the plan. The
// client's sidecar runs in every load generator's pod (loads): each copy
// is watched, named after its generator beyond the first.
func (p *Platform) watches(ctx context.Context, loads []corev1.Pod) ([]*proxyWatch, error) {
	pods, err := p.cs.CoreV1().Pods(p.t.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
	byPlanPod := map[string]corev1.Pod{}
	nodeProxy := map[string]corev1.Pod{}
	for _, pod := range pods.Items {
		if pod.DeletionTimestamp != nil {
			continue
		}
		switch pod.Labels[LabelRole] {
		case RoleNodeProxy:
			nodeProxy[pod.Spec.NodeName] = pod
		case RoleLoad:
		default:
			byPlanPod[pod.Labels[LabelPod]] = pod
		}
	}
	var out []*proxyWatch
	for _, px := range p.plan.Proxies {
		if px.Pod == p.plan.Load.ClientPod {
			for _, pod := range loads {
				w := &proxyWatch{name: px.Name, kind: px.Kind, planNode: px.Node, container: "proxy", pod: pod.Name, node: pod.Spec.NodeName}
				g := pod.Labels[LabelGenerator]
				for _, gp := range p.plan.Load.Generators {
					if gp.Name == g {
						w.planNode = gp.Node
					}
				}
				if g != "" && g != "g0" {
					w.name += "-" + g
				}
				out = append(out, w)
			}
			continue
		}
		w := &proxyWatch{name: px.Name, kind: px.Kind, planNode: px.Node, container: "proxy"}
		var pod corev1.Pod
		var ok bool
		if px.Kind == scenarios.KindNode {
			pod, ok = nodeProxy[p.t.Nodes[px.Node]]
		} else {
			pod, ok = byPlanPod[px.Pod]
		}
		if !ok {
			return nil, fmt.Errorf("proxy %s: no pod", px.Name)
		}
		w.pod, w.node = pod.Name, pod.Spec.NodeName
		out = append(out, w)
	}
	return out, nil
}

// scrape reads a proxy's /metrics through the pod proxy.
func (p *Platform) scrape(ctx context.Context, w *proxyWatch) (proxymetrics.Families, error) {
	b, err := p.podGet(ctx, w.pod, scenarios.PortAdmin, "metrics")
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", w.name, err)
	}
	f, err := proxymetrics.Parse(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", w.name, err)
	}
	return f, nil
}

func (p *Platform) applyEvent(ctx context.Context, ev scenarios.Event) error {
	body, err := json.Marshal(ev.Backend)
	if err != nil {
		return fmt.Errorf("event at %v on %s: %w", ev.At, ev.Pod, err)
	}
	pods, err := p.cs.CoreV1().Pods(p.t.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelPod + "=" + ev.Pod})
	if err != nil || len(pods.Items) == 0 {
		return fmt.Errorf("event at %v: no pod for %s: %v", ev.At, ev.Pod, err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = p.rc.Put().Namespace(p.t.Namespace).Resource("pods").Name(pods.Items[0].Name+":"+strconv.Itoa(scenarios.PortHTTP)).
		SubResource("proxy").Suffix("_backend/config").SetHeader("Content-Type", "application/json").Body(body).DoRaw(rctx)
	if err != nil {
		return fmt.Errorf("event at %v on %s: %w", ev.At, ev.Pod, err)
	}
	return nil
}

// checkBackends fails when a backend pod restarted or moved during the
// run: the node proxies' configurations name the pods' IPs as they were
// at deploy time, so such a cell did not measure what it describes.
func (p *Platform) checkBackends(ctx context.Context) error {
	pods, err := p.cs.CoreV1().Pods(p.t.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelRole + "=" + RoleBackend})
	if err != nil {
		return fmt.Errorf("checking the backends: %w", err)
	}
	seen := 0
	for _, pod := range pods.Items {
		name := pod.Labels[LabelPod]
		if want := p.t.PodIPs[name]; pod.Status.PodIP != want {
			return fmt.Errorf("backend %s moved during the run (IP %s, deployed at %s)", name, pod.Status.PodIP, want)
		}
		for _, c := range pod.Status.ContainerStatuses {
			if c.RestartCount > 0 {
				return fmt.Errorf("backend %s: container %s restarted %d times", name, c.Name, c.RestartCount)
			}
		}
		seen++
	}
	if seen != len(p.t.PodIPs) {
		return fmt.Errorf("checking the backends: %d pods for %d backends", seen, len(p.t.PodIPs))
	}
	return nil
}
