package result

import (
	"time"

	"github.com/meshbench/meshbench/loadgen"
)

// Layout of a results directory, as the runner writes it and Load reads it:
//
//	DIR/<scenario>/<timestamp>/run.json            Run, rewritten after every cell
//	DIR/<scenario>/<timestamp>/<cell>/result.json  CellResult
//	DIR/<scenario>/<timestamp>/<cell>/latency.hlog HdrHistogram interval log of the load
//	DIR/<scenario>/<timestamp>/<cell>/proxies/     generated proxy configs
//	DIR/<scenario>/<timestamp>/<cell>/logs/        every process's output
//
// <cell> is Cell.ID: the variant's ID and the repeat, e.g.
// "sidecar-peak_ewma-http1-r2".
const (
	RunFile    = "run.json"
	ResultFile = "result.json"
	HdrLogFile = "latency.hlog"
)

// Run describes one run of a scenario.
type Run struct {
	Scenario    string    `json:"scenario"`
	Description string    `json:"description"`
	Platform    string    `json:"platform"` // local, kind, kube
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished,omitzero"`
	// Incomplete is true until every cell ran; a run interrupted (Ctrl-C,
	// SIGTERM, an error) stays incomplete, and its finished cells are kept.
	Incomplete bool   `json:"incomplete"`
	Reason     string `json:"reason,omitempty"` // why it is incomplete
	Repeats    int    `json:"repeats"`
	Quick      bool   `json:"quick"`
	// Dimensions lists the matrix dimensions in the scenario's order, e.g.
	// topology, balancer, protocol; variant labels use these keys.
	Dimensions []string       `json:"dimensions"`
	Cells      []Cell         `json:"cells"` // in the order they ran (or will run)
	Env        map[string]any `json:"env"`   // CPU model, cores, Go version, git commit, kernel
	// Binaries are the reference proxy's binaries the run used, by proxy
	// value: "reference" and, in an A/B run, each build
	// ("reference@base").
	Binaries map[string]Binary `json:"binaries,omitempty"`
	// Cluster holds platform facts: node count and, on kind, the
	// Kubernetes version and node image.
	Cluster map[string]any `json:"cluster,omitempty"`
}

// Cell is one cell of a run: a variant of the matrix at one repeat.
type Cell struct {
	ID      string            `json:"id"`      // directory name
	Variant string            `json:"variant"` // ID without the repeat
	Labels  map[string]string `json:"labels"`  // dimension -> value
	Repeat  int               `json:"repeat"`  // 1-based
	// Status is pending, running, done, failed or n/a (not applicable:
	// the cell needs what its proxy does not have; Error says what).
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// Binary identifies one executable a run used.
type Binary struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
}

// Cell statuses.
const (
	StatusPending = "pending"
	StatusRunning = "running"
	StatusDone    = "done"
	StatusFailed  = "failed"
	StatusNA      = "n/a"
)

// CellResult is result.json: the load generator's Result (flattened: its
// fields are at the top level) with the resources and the proxies' own view
// of the cell.
type CellResult struct {
	loadgen.Result
	Cell Cell `json:"cell"`
	// Resources replaces the load generator's free-form field.
	Resources Resources `json:"resources"`
	// Proxies is what each proxy's /metrics said at the end of the cell.
	Proxies []ProxyMetrics `json:"proxies"`
	// Events are the personality changes applied during the cell, with
	// their offset from the start of the measured part.
	Events []Event `json:"events,omitempty"`
	// Notes are the parity choices a peer's adapter made for the cell
	// (docs/peers.md), each once.
	Notes []string `json:"notes,omitempty"`
}

// Resources is the CPU and memory of the proxies over the measured part.
type Resources struct {
	// SampleInterval is how often each process was sampled.
	SampleIntervalMs int          `json:"sample_interval_ms"`
	Proxies          []ProxyUsage `json:"proxies"`
	// Total sums the proxies: the cost of the topology.
	Total Usage `json:"total"`
}

// ProxyUsage is one proxy instance's usage.
type ProxyUsage struct {
	Name string `json:"name"` // e.g. sidecar-echo-0, node-1
	Kind string `json:"kind"` // sidecar or node
	Node string `json:"node"`
	Usage
}

// Usage is CPU and memory over the measured part.
type Usage struct {
	CPUSeconds float64 `json:"cpu_seconds"` // user + system
	// CPUMicrosPerRequest is CPU time divided by the requests the load
	// generator completed in the measured part.
	CPUMicrosPerRequest float64 `json:"cpu_us_per_request"`
	RSSPeakBytes        int64   `json:"rss_peak_bytes"` // for Total: sum of the peaks
	RSSMeanBytes        int64   `json:"rss_mean_bytes"` // for Total: sum of the means
	// AnonPeakBytes is the peak of the anonymous resident memory (heap,
	// stacks; the local platform reads RssAnon): the RSS without the
	// binary's file-backed pages, whose count depends on the page cache.
	// For Total: sum of the peaks. 0 where the platform cannot tell.
	AnonPeakBytes int64 `json:"anon_peak_bytes,omitempty"`
	// IdleRSSBytes is the RSS just before the load started (the proxy
	// deployed, ready and not yet sent a request): what an idle proxy
	// holds. For Total: the sum. 0 where the platform cannot tell (the
	// local platform reads it; the kube platform does not).
	IdleRSSBytes int64 `json:"idle_rss_bytes,omitempty"`
}

// ProxyMetrics is a proxy's own account of the cell, from its /metrics.
type ProxyMetrics struct {
	Name string `json:"name"`
	// Latency is the proxy-observed response latency of requests it
	// received, by direction, estimated from response_latency_ms's
	// buckets (interpolated within a bucket), in microseconds.
	Latency map[string]loadgen.Percentiles `json:"latency_us"` // "inbound", "outbound"
	// Endpoints counts upstream requests by cluster and endpoint address.
	Endpoints map[string]map[string]int64 `json:"endpoints"`
	// Retries, Ejections and BudgetExhausted total the resilience series.
	Retries         int64 `json:"retries"`
	Ejections       int64 `json:"ejections"`
	BudgetExhausted int64 `json:"budget_exhausted"`
	// Handshakes counts the TLS handshakes the proxy completed, as server
	// and as client (tls_handshakes_total with result success).
	Handshakes int64 `json:"handshakes"`
}

// Event is a change applied to a backend during a cell.
type Event struct {
	AtMs    int64  `json:"at_ms"` // from the start of the measured part
	Pod     string `json:"pod"`
	Latency string `json:"latency,omitempty"`
	// Concurrency and ErrorRate as set by the event.
	Concurrency int     `json:"concurrency,omitempty"`
	ErrorRate   float64 `json:"error_rate,omitempty"`
}
