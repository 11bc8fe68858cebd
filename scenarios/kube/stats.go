package kube

import (
	"github.com/meshbench/meshbench/scenarios/platform"

	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/meshbench/meshbench/reports/result"
)

// summary is the part of the kubelet's /stats/summary the platform reads
// (the Summary API, k8s.io/kubelet/pkg/apis/stats/v1alpha1).
type summary struct {
	Pods []struct {
		PodRef struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"podRef"`
		Containers []struct {
			Name string `json:"name"`
			CPU  *struct {
				Time                 time.Time `json:"time"`
				UsageCoreNanoSeconds *uint64   `json:"usageCoreNanoSeconds"`
			} `json:"cpu"`
			Memory *struct {
				Time            time.Time `json:"time"`
				WorkingSetBytes *uint64   `json:"workingSetBytes"`
				RSSBytes        *uint64   `json:"rssBytes"`
			} `json:"memory"`
		} `json:"containers"`
	} `json:"pods"`
}

// statSample is one reading of a container: its cumulative CPU time at
// the kubelet's time of measurement, and its memory.
type statSample struct {
	at     time.Time
	cpuNs  uint64
	memory int64 // RSS when the kubelet reports it, else the working set
}

// sample reads every proxy's container stats from its node's kubelet
// (GET /api/v1/nodes/NODE/proxy/stats/summary) now and every
// SampleInterval until the returned function is called, which takes a
// last reading.
func (p *Platform) sample(ws []*proxyWatch) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	read := func() {
		byNode := map[string][]*proxyWatch{}
		for _, w := range ws {
			byNode[w.node] = append(byNode[w.node], w)
		}
		for node, list := range byNode {
			s, err := p.summary(ctx, node)
			for _, w := range list {
				w.mu.Lock()
				if err != nil {
					w.sampleErr = err
				} else if smp, ok := s.find(p.t.Namespace, w.pod, w.container); ok {
					w.samples = append(w.samples, smp)
				}
				w.mu.Unlock()
			}
		}
	}
	go func() {
		defer close(done)
		t := time.NewTicker(p.opts.SampleInterval)
		defer t.Stop()
		read()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				read()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
			ctx = context.Background()
			read()
		})
	}
}

func (p *Platform) summary(ctx context.Context, node string) (*summary, error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, err := p.rc.Get().Resource("nodes").Name(node).SubResource("proxy").Suffix("stats/summary").DoRaw(rctx)
	if err != nil {
		return nil, fmt.Errorf("reading the kubelet stats of %s: %w", node, err)
	}
	var s summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decoding the kubelet stats of %s: %w", node, err)
	}
	return &s, nil
}

// find returns a container's reading.
func (s *summary) find(ns, pod, container string) (statSample, bool) {
	for _, p := range s.Pods {
		if p.PodRef.Namespace != ns || p.PodRef.Name != pod {
			continue
		}
		for _, c := range p.Containers {
			if c.Name != container || c.CPU == nil || c.CPU.UsageCoreNanoSeconds == nil {
				continue
			}
			smp := statSample{at: c.CPU.Time, cpuNs: *c.CPU.UsageCoreNanoSeconds}
			if m := c.Memory; m != nil {
				switch {
				case m.RSSBytes != nil && *m.RSSBytes > 0:
					smp.memory = int64(*m.RSSBytes)
				case m.WorkingSetBytes != nil:
					smp.memory = int64(*m.WorkingSetBytes)
				}
			}
			return smp, true
		}
	}
	return statSample{}, false
}

// usage summarises a proxy's readings over the measured part. The
// kubelet refreshes a container's counters every few seconds, each with
// its own time: CPU is the rate between the first and the last distinct
// reading, times the measured window.
func (w *proxyWatch) usage(window time.Duration, requests int64) result.Usage {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.samples) == 0 {
		return result.Usage{}
	}
	var cpu float64
	first, last := w.samples[0], w.samples[len(w.samples)-1]
	if dt := last.at.Sub(first.at); dt > 0 && last.cpuNs >= first.cpuNs {
		rate := float64(last.cpuNs-first.cpuNs) / 1e9 / dt.Seconds()
		cpu = rate * window.Seconds()
	}
	memory := make([]int64, len(w.samples))
	for i, s := range w.samples {
		memory[i] = s.memory
	}
	return platform.Usage(cpu, memory, requests)
}

// Resources returns the proxies' CPU and memory over the last Run's
// measured part, from the kubelets' stats, and each proxy's account of it
// from its /metrics.
func (p *Platform) Resources(_ context.Context) (result.Resources, []result.ProxyMetrics, error) {
	m := p.last
	if m == nil {
		return result.Resources{}, nil, fmt.Errorf("resources: no completed run")
	}
	samples := make([]platform.ProxySample, len(m.proxies))
	for i, w := range m.proxies {
		s := platform.ProxySample{Name: w.name, Kind: w.kind, Node: w.planNode, Usage: w.usage(m.window, m.requests),
			ScrapeErr: w.scrapeErr, Start: w.start, End: w.end, NoMetrics: p.t != nil && p.t.Peer != nil}
		if w.sampleErr != nil && len(w.samples) == 0 {
			// A sample missed among others still gives the usage.
			s.SampleErr = w.sampleErr
		}
		samples[i] = s
	}
	return platform.Summarize(p.opts.SampleInterval, m.requests, samples)
}
