package platform

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/meshbench/meshbench/reports/result"
	"github.com/meshbench/meshbench/scenarios"
	"github.com/meshbench/meshbench/scenarios/proxymetrics"
)

// Platform realizes Plans; the shape follows DESIGN.md (Deploy, Run,
// Resources, Teardown). The runner calls Deploy, Run and Resources in that
// order for every cell, and Teardown on every exit path, also after a
// failed Deploy or Run; Teardown must be safe to call twice.
type Platform interface {
	// Name is local, kind or kube.
	Name() string
	// Deploy starts everything the plan describes and returns when all of
	// it is ready to take load. dir is the cell's results directory: logs
	// and generated files go there.
	Deploy(ctx context.Context, p *scenarios.Plan, dir string) error
	// Run runs the deployed plan's load and applies its events. It returns
	// the load generator's result and the events applied (the rest of the
	// CellResult is the runner's), and writes the HdrHistogram interval log
	// to dir/latency.hlog.
	Run(ctx context.Context) (*result.CellResult, error)
	// Resources returns the proxies' CPU and memory over the last Run's
	// measured part and each proxy's /metrics, scraped after the load.
	Resources(ctx context.Context) (result.Resources, []result.ProxyMetrics, error)
	// Teardown stops everything Deploy started.
	Teardown(ctx context.Context) error
	// Facts describes the platform for the run's record (node count; on
	// Kubernetes the version and node image).
	Facts() map[string]any
}

// BackendArgs is the meshbench command line (after the program name) of a
// pod's backend, listening for HTTP on httpAddr and gRPC on grpcAddr.
func BackendArgs(pod *scenarios.Pod, httpAddr, grpcAddr string) []string {
	b := pod.Backend
	latency := b.Latency
	if latency == "" {
		latency = "none"
	}
	return []string{"backend",
		"--listen", httpAddr,
		"--grpc-listen", grpcAddr,
		"--name", pod.Name,
		"--latency", latency,
		"--concurrency", strconv.Itoa(b.Concurrency),
		"--error-rate", strconv.FormatFloat(b.ErrorRate, 'g', -1, 64),
		"--response-size", strconv.Itoa(b.ResponseSize),
	}
}

// HostPort joins an address and one of the plan's ports.
func HostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// Usage is a proxy's usage over a measured part: cpuSeconds of CPU, the
// peak and mean of its memory readings, and the CPU per request for the
// requests the load generator completed. No readings is no usage.
func Usage(cpuSeconds float64, memory []int64, requests int64) result.Usage {
	var u result.Usage
	if len(memory) == 0 {
		return u
	}
	u.CPUSeconds = cpuSeconds
	var sum int64
	for _, m := range memory {
		u.RSSPeakBytes = max(u.RSSPeakBytes, m)
		sum += m
	}
	u.RSSMeanBytes = sum / int64(len(memory))
	if requests > 0 {
		u.CPUMicrosPerRequest = u.CPUSeconds * 1e6 / float64(requests)
	}
	return u
}

// ProxyWorkers is the number of workers every proxy gets on every
// platform, the reference proxy (GOMAXPROCS) and each peer (worker
// processes or threads) alike (docs/design.md).
const ProxyWorkers = 1

// ProxySample is what a platform measured of one proxy over a cell's
// measured part.
type ProxySample struct {
	Name, Kind, Node string
	Usage            result.Usage
	// SampleErr, when set, is why the proxy's CPU and memory could not be
	// sampled; ScrapeErr why its /metrics could not be read, in which case
	// Start and End (its metrics before and after) are not used.
	SampleErr, ScrapeErr error
	Start, End           proxymetrics.Families
	// NoMetrics marks a proxy whose metrics are not the reference
	// proxy's series (a peer): it has no ProxyMetrics.
	NoMetrics bool
}

// Summarize builds a cell's resources and proxy metrics from the samples
// of its proxies, with requests the load generator completed in the
// measured part. Every sampling and scraping error is returned, joined,
// beside what could be measured. Proxies is never nil.
func Summarize(interval time.Duration, requests int64, samples []ProxySample) (result.Resources, []result.ProxyMetrics, error) {
	res := result.Resources{SampleIntervalMs: int(interval.Milliseconds()), Proxies: []result.ProxyUsage{}}
	var metrics []result.ProxyMetrics
	var errs []error
	for _, s := range samples {
		u := s.Usage
		res.Proxies = append(res.Proxies, result.ProxyUsage{Name: s.Name, Kind: s.Kind, Node: s.Node, Usage: u})
		res.Total.CPUSeconds += u.CPUSeconds
		res.Total.RSSPeakBytes += u.RSSPeakBytes
		res.Total.RSSMeanBytes += u.RSSMeanBytes
		res.Total.AnonPeakBytes += u.AnonPeakBytes
		res.Total.IdleRSSBytes += u.IdleRSSBytes
		if s.SampleErr != nil {
			errs = append(errs, fmt.Errorf("sampling %s: %w", s.Name, s.SampleErr))
		}
		if s.NoMetrics {
			continue
		}
		if s.ScrapeErr != nil {
			errs = append(errs, s.ScrapeErr)
			continue
		}
		metrics = append(metrics, proxymetrics.Summarize(s.Name, s.Start, s.End))
	}
	if requests > 0 {
		res.Total.CPUMicrosPerRequest = res.Total.CPUSeconds * 1e6 / float64(requests)
	}
	if len(errs) > 0 {
		return res, metrics, fmt.Errorf("resources: %w", errors.Join(errs...))
	}
	return res, metrics, nil
}
