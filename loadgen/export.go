package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// WriteIntervalLog writes the run as an HdrHistogram interval log (format
// 1.3, the one HistogramLogAnalyzer and every HdrHistogram port read): one
// interval per second of the measured window, response time from the
// intended send, in microseconds. Per-second histograms keep 2 significant
// digits; the whole-run histogram in the result keeps 3.
func WriteIntervalLog(w io.Writer, r *Result) error {
	lw := hdrhistogram.NewHistogramLogWriter(w)
	start := r.Start.UnixMilli()
	steps := []func() error{
		func() error {
			return lw.OutputComment(fmt.Sprintf("meshbench load %s %s: response time from intended send, microseconds", r.Protocol, r.Target))
		},
		lw.OutputLogFormatVersion,
		func() error { return lw.OutputStartTime(start) },
		func() error { lw.SetBaseTime(start); return lw.OutputBaseTime(start) },
		lw.OutputLegend,
	}
	for _, f := range steps {
		if err := f(); err != nil {
			return fmt.Errorf("writing interval log: %w", err)
		}
	}
	for i, s := range r.seconds {
		if i >= int(r.DurationS) {
			break
		}
		h := s.hist
		h.SetStartTimeMs(start + int64(i)*1000)
		h.SetEndTimeMs(start + int64(i+1)*1000)
		if err := lw.OutputIntervalHistogram(h); err != nil {
			return fmt.Errorf("writing interval log: %w", err)
		}
	}
	return nil
}

// FortioResult is a result in fortio's JSON shape (periodic.RunnerResults
// with fhttp's HTTP fields), so fortio's report UI and scripts built on it
// can read meshbench runs. Durations in the histogram are in seconds, as
// fortio writes them.
type FortioResult struct {
	RunType           string
	Labels            string
	StartTime         time.Time
	RequestedQPS      string
	RequestedDuration string
	ActualQPS         float64
	ActualDuration    time.Duration
	NumThreads        int
	Version           string
	DurationHistogram FortioHistogram
	Exactly           int64
	Jitter            bool
	Uniform           bool
	NoCatchUp         bool
	RetCodes          map[string]int64
	URL               string `json:"url,omitempty"`
	Destination       string `json:",omitempty"`
	SocketCount       int
}

// FortioHistogram is fortio's stats.HistogramData.
type FortioHistogram struct {
	Count       int64
	Min         float64
	Max         float64
	Sum         float64
	Avg         float64
	StdDev      float64
	Data        []FortioBucket
	Percentiles []FortioPercentile
}

// FortioBucket is one histogram bucket: [Start, End) in seconds, the
// cumulative percentage up to its end and its count.
type FortioBucket struct {
	Start   float64
	End     float64
	Percent float64
	Count   int64
}

// FortioPercentile is a percentile and its value in seconds.
type FortioPercentile struct {
	Percentile float64
	Value      float64
}

// Fortio converts the result to fortio's JSON shape. A result read back
// from JSON uses its encoded histogram.
func (r *Result) Fortio() FortioResult {
	h := r.latency
	if h == nil {
		if d, err := DecodeHistogram(r.Histogram); err == nil {
			h = d
		} else {
			h = newHistogram()
		}
	}
	sec := func(us int64) float64 { return float64(us) / 1e6 }
	fh := FortioHistogram{Count: h.TotalCount()}
	if fh.Count > 0 {
		fh.Min, fh.Max = sec(h.Min()), sec(h.Max())
		fh.Avg, fh.StdDev = h.Mean()/1e6, h.StdDev()/1e6
		fh.Sum = fh.Avg * float64(fh.Count)
	}
	var cum int64
	for _, b := range h.Distribution() {
		if b.Count == 0 {
			continue
		}
		cum += b.Count
		fh.Data = append(fh.Data, FortioBucket{Start: sec(b.From), End: sec(b.To), Count: b.Count,
			Percent: 100 * float64(cum) / float64(fh.Count)})
	}
	for _, p := range []float64{50, 75, 90, 99, 99.9} {
		if fh.Count > 0 {
			fh.Percentiles = append(fh.Percentiles, FortioPercentile{Percentile: p, Value: sec(h.ValueAtQuantile(p))})
		}
	}
	var labels []string
	for _, k := range slices.Sorted(maps.Keys(r.Labels)) {
		labels = append(labels, k+"="+r.Labels[k])
	}
	qps := "max"
	if r.RequestedRate > 0 {
		qps = strconv.FormatFloat(r.RequestedRate, 'f', -1, 64)
	}
	runType := "HTTP"
	if r.Protocol == GRPC {
		runType = "GRPC Ping"
	}
	out := FortioResult{
		RunType: runType, Labels: strings.Join(labels, " "), StartTime: r.Start,
		RequestedQPS: qps, RequestedDuration: (time.Duration(r.DurationS * float64(time.Second))).Round(time.Millisecond).String(),
		ActualQPS: r.AchievedRate, ActualDuration: time.Duration(r.DurationS * float64(time.Second)),
		NumThreads: r.Connections * max(r.Streams, 1), Version: "meshbench", DurationHistogram: fh,
		Uniform: r.Arrival == Uniform, RetCodes: r.StatusCodes, SocketCount: r.Connections,
	}
	if r.Protocol == GRPC {
		out.Destination = r.Target
	} else {
		out.URL = r.Target
	}
	return out
}

// AttachIntervalLog gives a result decoded from JSON its per-second
// histograms back from its interval log (as WriteIntervalLog wrote it),
// so that Merge merges its seconds exactly and WriteIntervalLog can write
// it again. The log holds at most one interval per second of the
// result's timeseries.
func AttachIntervalLog(r *Result, log io.Reader) error {
	lr := hdrhistogram.NewHistogramLogReader(log)
	var acc []*secondAcc
	for {
		h, err := lr.NextIntervalHistogram()
		if err != nil {
			return fmt.Errorf("reading interval log: %w", err)
		}
		if h == nil {
			break
		}
		a := &secondAcc{hist: hdrhistogram.New(histMin, histMax, 2), count: h.TotalCount()}
		a.hist.Merge(h)
		if i := len(acc); i < len(r.Timeseries) {
			a.errors = r.Timeseries[i].Errors
		}
		acc = append(acc, a)
	}
	if len(acc) > len(r.Timeseries) {
		return fmt.Errorf("interval log: %d intervals for %d seconds of timeseries", len(acc), len(r.Timeseries))
	}
	for i := len(acc); i < len(r.Timeseries); i++ { // seconds without a request
		acc = append(acc, &secondAcc{hist: hdrhistogram.New(histMin, histMax, 2), errors: r.Timeseries[i].Errors})
	}
	r.seconds = acc
	return nil
}
