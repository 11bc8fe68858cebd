package loadgen

import (
	"fmt"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Result is the outcome of a run: the per-cell result.json of the scenario
// runner. Times are in microseconds. docs/loadgen.md documents every field.
type Result struct {
	Labels map[string]string `json:"labels"`
	Target string            `json:"target"` // the first target
	// Targets are the targets the connections were spread over, when the
	// spec named several (Spec.Targets).
	Targets       []string `json:"targets,omitempty"`
	Protocol      string   `json:"protocol"`
	RequestedRate float64  `json:"requested_rate"` // 0 = closed loop
	AchievedRate  float64  `json:"achieved_rate"`
	DurationS     float64  `json:"duration_s"` // measured part
	Requests      int64    `json:"requests"`   // completed in the measured part
	Connections   int      `json:"connections"`
	Streams       int      `json:"streams"`
	Arrival       string   `json:"arrival,omitempty"`
	// Sustained is false when an open-loop run fell more than 1% short of
	// its requested rate; Reason then says why.
	Sustained bool   `json:"sustained"`
	Reason    string `json:"reason,omitempty"`
	// Incomplete marks a run that was interrupted (Ctrl-C, SIGTERM):
	// everything measured up to then is kept.
	Incomplete bool `json:"incomplete"`
	// Invalid, when not empty, says why the run is not a measurement of
	// its target: the generator could not keep its schedule (it fell short
	// of the rate, sent later than MaxSendLag, or too many requests waited
	// for a busy connection). Reports show such a cell as invalid and the
	// gate refuses it. Empty is valid.
	Invalid string `json:"invalid,omitempty"`
	// SendLag is how late requests left after their intended send time
	// while their connection was free: the generator's own lateness
	// (timers, scheduling, CPU). Open loop only.
	SendLag Percentiles `json:"send_lag_us"`
	// ConnectionWaits counts requests whose connection was still busy with
	// the previous request at their intended send time (open loop only):
	// they were sent when it came free, and their response time counts
	// from the intended time.
	ConnectionWaits int64 `json:"connection_waits"`
	// Engine is the load engine that measured the run: "meshbench" (the
	// default) or "fortio".
	Engine string `json:"engine,omitempty"`
	// NewConnectionPerRequest marks a run that opened a connection (and
	// did a TLS handshake) for every request.
	NewConnectionPerRequest bool `json:"new_connection_per_request,omitempty"`
	// Stream names the stream of a mix this result is (in Mix).
	Stream string `json:"stream,omitempty"`
	// Mix holds each stream's own result when the load was a mix of
	// streams run at once (Spec.Mix); the figures above merge them (the
	// histograms merged, never percentiles averaged).
	Mix []Result `json:"mix,omitempty"`
	// Generators holds each load generator's own result when several
	// generators shared the load; the figures above merge them.
	Generators []Result `json:"generators,omitempty"`
	// Search is the rate search of a run that looked for the highest rate
	// meeting an objective (Spec.Search); the figures above are those of
	// the probe at the rate found (or of the lowest probe when none met).
	Search *SearchResult `json:"search,omitempty"`

	Errors Errors `json:"errors"`
	// Latency is response time from the intended send time; ServiceTime
	// from the actual send. In closed loop the two are the same.
	Latency     Percentiles `json:"latency_us"`
	ServiceTime Percentiles `json:"service_time_us"`
	// Histogram and ServiceHistogram are HdrHistograms in the V2
	// compressed encoding, base64: decodable by every HdrHistogram port.
	Histogram        string           `json:"histogram"`
	ServiceHistogram string           `json:"service_histogram"`
	Endpoints        map[string]int64 `json:"endpoints"` // responses by X-Backend
	// StatusCodes counts responses by HTTP status ("200") or gRPC code
	// ("OK", "Unavailable"); requests that got no response are not in it.
	StatusCodes map[string]int64 `json:"status_codes"`
	Resources   map[string]any   `json:"resources"`
	Timeseries  []Second         `json:"timeseries"`
	// Start is when the measured part began (after the warm-up).
	Start time.Time      `json:"start,omitzero"`
	Env   map[string]any `json:"env"`

	latency, service, lag *hdrhistogram.Histogram
	seconds               []*secondAcc
}

// Engines that can measure a run.
const (
	EngineMeshbench = "meshbench"
	EngineFortio    = "fortio"
)

// Errors counts failed requests by class: connect, timeout, reset, other,
// http_<status> for 4xx/5xx responses, grpc_<Code> for non-OK statuses.
type Errors struct {
	Total   int64            `json:"total"`
	ByClass map[string]int64 `json:"by_class"`
}

// Percentiles summarise a histogram, in microseconds.
type Percentiles struct {
	P50   int64   `json:"p50"`
	P90   int64   `json:"p90"`
	P99   int64   `json:"p99"`
	P999  int64   `json:"p999"`
	P9999 int64   `json:"p9999"`
	Max   int64   `json:"max"`
	Mean  float64 `json:"mean"`
	Count int64   `json:"count"`
}

// Second is one second of the measured part.
type Second struct {
	T      int     `json:"t"`    // seconds since the measured part began
	Rate   float64 `json:"rate"` // completed requests in that second
	P50    int64   `json:"p50_us"`
	P99    int64   `json:"p99_us"`
	Errors int64   `json:"errors"`
}

// LatencyHistogram returns the merged response-time histogram.
func (r *Result) LatencyHistogram() *hdrhistogram.Histogram { return r.latency }

// ServiceHistogram returns the merged service-time histogram.
func (r *Result) ServiceTimeHistogram() *hdrhistogram.Histogram { return r.service }

func percentilesOf(h *hdrhistogram.Histogram) Percentiles {
	if h.TotalCount() == 0 {
		return Percentiles{}
	}
	return Percentiles{
		P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90), P99: h.ValueAtQuantile(99),
		P999: h.ValueAtQuantile(99.9), P9999: h.ValueAtQuantile(99.99),
		Max: h.Max(), Mean: h.Mean(), Count: h.TotalCount(),
	}
}

// EncodeHistogram returns h in HdrHistogram's V2 compressed encoding,
// base64.
func EncodeHistogram(h *hdrhistogram.Histogram) (string, error) {
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return "", fmt.Errorf("encoding histogram: %w", err)
	}
	return string(b), nil
}

// DecodeHistogram reverses EncodeHistogram.
func DecodeHistogram(s string) (*hdrhistogram.Histogram, error) {
	h, err := hdrhistogram.Decode([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("decoding histogram: %w", err)
	}
	return h, nil
}
