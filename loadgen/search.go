package loadgen

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Objective is what a rate must meet in a search: latency percentiles from
// the intended send time at most these values (zero: not part of the
// objective), an error fraction at most Errors, and a valid run.
type Objective struct {
	P50  time.Duration `json:"-"`
	P90  time.Duration `json:"-"`
	P99  time.Duration `json:"-"`
	P999 time.Duration `json:"-"`
	// Errors is the highest error fraction (0.001 = 0.1 %); negative means
	// any.
	Errors float64 `json:"errors"`
}

// SearchSpec asks for the highest open-loop rate whose run meets an
// objective: probes at rates rising exponentially from Start until one
// fails or Max is reached, then bisection between the last rate that met
// the objective and the first that did not, until they are within
// Precision of each other. Every probe is a run of the Spec's warm-up and
// duration.
type SearchSpec struct {
	Objective Objective
	// Max is the highest rate tried (required).
	Max float64
	// Start is the first rate tried (default Max/64, at least 1).
	Start float64
	// Precision ends the bisection when hi-lo ≤ Precision×lo (default
	// 0.02).
	Precision float64
	// MaxProbes bounds the search (default 20).
	MaxProbes int
}

// SearchResult is what a search found.
type SearchResult struct {
	Objective ObjectiveJSON `json:"objective"`
	// MaxRate is the highest requested rate whose probe met the
	// objective; 0 when none did.
	MaxRate float64 `json:"max_rate"`
	// MaxAchievedRate is the achieved rate of that probe.
	MaxAchievedRate float64 `json:"max_achieved_rate"`
	// Capped is true when the probe at the search's Max met the
	// objective: the real maximum is higher.
	Capped bool `json:"capped"`
	// Limit says why the rate above MaxRate failed (the objective it
	// missed, or why its run was invalid).
	Limit  string  `json:"limit,omitempty"`
	Probes []Probe `json:"probes"`
}

// ObjectiveJSON is an Objective as result.json writes it, in microseconds.
type ObjectiveJSON struct {
	P50us  int64   `json:"p50_us,omitempty"`
	P90us  int64   `json:"p90_us,omitempty"`
	P99us  int64   `json:"p99_us,omitempty"`
	P999us int64   `json:"p999_us,omitempty"`
	Errors float64 `json:"errors"`
	Max    float64 `json:"max"`
}

// Probe is one measured run of a search, in the order run.
type Probe struct {
	Rate         float64     `json:"rate"` // requested
	AchievedRate float64     `json:"achieved_rate"`
	Requests     int64       `json:"requests"`
	Errors       int64       `json:"errors"`
	ErrorRate    float64     `json:"error_rate"`
	Latency      Percentiles `json:"latency_us"`
	// Invalid is why the probe's run was not a valid measurement.
	Invalid string `json:"invalid,omitempty"`
	// Met is true when the probe met the objective; Missed otherwise says
	// which part it missed.
	Met    bool   `json:"met"`
	Missed string `json:"missed,omitempty"`
	// Histogram is the probe's response-time HdrHistogram (V2, base64).
	Histogram string `json:"histogram"`
}

// Search defaults.
const (
	DefaultSearchPrecision = 0.02
	DefaultSearchProbes    = 20
)

// normalize fills defaults and validates.
func (ss *SearchSpec) normalize() error {
	var errs []error
	o := ss.Objective
	if ss.Max <= 0 {
		errs = append(errs, errors.New("search: max must be a positive rate: the search must end"))
	}
	if o.P50 < 0 || o.P90 < 0 || o.P99 < 0 || o.P999 < 0 {
		errs = append(errs, errors.New("search: latency objectives must not be negative"))
	}
	if o.P50 == 0 && o.P90 == 0 && o.P99 == 0 && o.P999 == 0 && o.Errors < 0 {
		errs = append(errs, errors.New("search: the objective is empty: give a latency percentile or an error fraction"))
	}
	if o.Errors > 1 {
		errs = append(errs, fmt.Errorf("search: errors %v: want a fraction from 0 to 1", o.Errors))
	}
	if ss.Start < 0 || ss.Precision < 0 || ss.MaxProbes < 0 {
		errs = append(errs, errors.New("search: start, precision and probes must not be negative"))
	}
	if ss.Start == 0 {
		ss.Start = max(1, ss.Max/64)
	}
	if ss.Start > ss.Max && ss.Max > 0 {
		errs = append(errs, fmt.Errorf("search: start %v above max %v", ss.Start, ss.Max))
	}
	if ss.Precision == 0 {
		ss.Precision = DefaultSearchPrecision
	}
	if ss.MaxProbes == 0 {
		ss.MaxProbes = DefaultSearchProbes
	}
	return errors.Join(errs...)
}

// JSON returns the objective as result.json writes it.
func (ss *SearchSpec) JSON() ObjectiveJSON {
	o := ss.Objective
	return ObjectiveJSON{P50us: o.P50.Microseconds(), P90us: o.P90.Microseconds(), P99us: o.P99.Microseconds(),
		P999us: o.P999.Microseconds(), Errors: o.Errors, Max: ss.Max}
}

// String describes the objective, e.g. "p99 ≤ 10ms, errors ≤ 0.1%".
func (o Objective) String() string {
	var parts []string
	for _, b := range o.bounds() {
		parts = append(parts, fmt.Sprintf("%s ≤ %v", b.name, b.limit))
	}
	if o.Errors >= 0 {
		parts = append(parts, fmt.Sprintf("errors ≤ %s", percent(o.Errors)))
	}
	return strings.Join(parts, ", ")
}

type latencyBound struct {
	name  string
	limit time.Duration
	value func(Percentiles) int64
}

func (o Objective) bounds() []latencyBound {
	all := []latencyBound{
		{"p50", o.P50, func(p Percentiles) int64 { return p.P50 }},
		{"p90", o.P90, func(p Percentiles) int64 { return p.P90 }},
		{"p99", o.P99, func(p Percentiles) int64 { return p.P99 }},
		{"p99.9", o.P999, func(p Percentiles) int64 { return p.P999 }},
	}
	var out []latencyBound
	for _, b := range all {
		if b.limit > 0 {
			out = append(out, b)
		}
	}
	return out
}

func percent(f float64) string { return strconv.FormatFloat(100*f, 'g', 4, 64) + "%" }

// judge is a probe of result r against the objective. generatorLimited
// is true when the probe met the latency and error objectives but its run
// was invalid: the load generator, not the target, stopped the search.
func (o Objective) judge(r *Result) (p Probe, generatorLimited bool) {
	p = Probe{Rate: r.RequestedRate, AchievedRate: r.AchievedRate, Requests: r.Requests, Errors: r.Errors.Total,
		Latency: r.Latency, Invalid: r.Invalid, Histogram: r.Histogram}
	if r.Requests > 0 {
		p.ErrorRate = float64(r.Errors.Total) / float64(r.Requests)
	}
	var missed []string
	for _, b := range o.bounds() {
		if v := time.Duration(b.value(r.Latency)) * time.Microsecond; v > b.limit {
			missed = append(missed, fmt.Sprintf("%s %v > %v", b.name, v, b.limit))
		}
	}
	switch {
	case r.Requests == 0:
		missed = append(missed, "no request completed")
	case o.Errors >= 0 && p.ErrorRate > o.Errors:
		missed = append(missed, fmt.Sprintf("errors %s > %s", percent(p.ErrorRate), percent(o.Errors)))
	}
	generatorLimited = len(missed) == 0 && r.Invalid != ""
	if r.Invalid != "" {
		missed = append(missed, "invalid run: "+r.Invalid)
	}
	if r.Incomplete {
		missed = append(missed, "interrupted")
	}
	p.Met = len(missed) == 0
	p.Missed = strings.Join(missed, "; ")
	return p, generatorLimited
}

// search runs the probes of spec.Search and returns the result of the
// highest rate that met the objective, with every probe in its Search.
func search(ctx context.Context, spec Spec, f faults) (*Result, error) {
	ss := *spec.Search
	if err := ss.normalize(); err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	for _, st := range spec.Mix {
		if st.Share == 0 {
			return nil, fmt.Errorf("load spec: search: stream %s has a rate of its own; a search probes total rates, which the streams divide by their shares", st.Name)
		}
	}
	base := spec
	base.Search = nil
	sr := &SearchResult{Objective: ss.JSON(), Probes: []Probe{}}
	var best, lowest *Result
	var lo, hi float64 // highest rate met, lowest failed (0: none yet)
	var limitedByGenerator bool
	interrupted := false
	probe := func(rate float64) (bool, error) {
		s := base
		s.Rate = rate
		r, err := runOnce(ctx, s, f)
		if err != nil {
			return false, fmt.Errorf("search probe at %.6g req/s: %w", rate, err)
		}
		p, genLimited := ss.Objective.judge(r)
		sr.Probes = append(sr.Probes, p)
		if lowest == nil || rate < lowest.RequestedRate {
			lowest = r
		}
		if r.Incomplete {
			interrupted = true
			return false, nil
		}
		if p.Met {
			lo, best = rate, r
			sr.MaxRate, sr.MaxAchievedRate = rate, r.AchievedRate
		} else {
			hi = rate
			sr.Limit = fmt.Sprintf("at %.6g req/s: %s", rate, p.Missed)
			limitedByGenerator = genLimited
		}
		return p.Met, nil
	}
	// Exponential: double until a probe fails or max is reached.
	for rate := ss.Start; len(sr.Probes) < ss.MaxProbes; rate = min(2*rate, ss.Max) {
		met, err := probe(rate)
		if err != nil {
			return nil, err
		}
		if interrupted || !met {
			break
		}
		if rate >= ss.Max {
			sr.Capped = true
			break
		}
	}
	// Bisection between the highest rate met and the lowest failed.
	for !interrupted && hi > 0 && len(sr.Probes) < ss.MaxProbes {
		if lo > 0 && hi-lo <= ss.Precision*lo {
			break
		}
		if lo == 0 && hi < max(1, ss.Start/64) {
			break // nothing meets the objective even at a trickle
		}
		if _, err := probe((lo + hi) / 2); err != nil {
			return nil, err
		}
	}
	out := best
	if out == nil {
		out = lowest
	}
	out.Search = sr
	out.Incomplete = out.Incomplete || interrupted
	if limitedByGenerator && !sr.Capped {
		out.Invalid = "the search was stopped by the load generator, not by the target: " + sr.Limit
	}
	return out, nil
}

// DefaultSearchErrors is the error fraction an objective allows when it
// does not say.
const DefaultSearchErrors = 0.001

// ParseSearch reads a search from its fields, as a scenario's
// `rate: {search: {...}}` or `meshbench load --search` give them: p50,
// p90, p99, p99.9 (durations such as 10ms), errors (a fraction or a
// percentage such as 0.1%; default DefaultSearchErrors, "any" for no
// bound), max (required), start, precision (a fraction or percentage) and
// probes.
func ParseSearch(fields map[string]string) (SearchSpec, error) {
	ss := SearchSpec{Objective: Objective{Errors: DefaultSearchErrors}}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		v := strings.TrimSpace(fields[k])
		var err error
		switch k {
		case "p50", "p90", "p99", "p99.9", "p999":
			var d time.Duration
			if d, err = time.ParseDuration(v); err == nil && d <= 0 {
				err = errors.New("want a positive duration")
			}
			switch k {
			case "p50":
				ss.Objective.P50 = d
			case "p90":
				ss.Objective.P90 = d
			case "p99":
				ss.Objective.P99 = d
			default:
				ss.Objective.P999 = d
			}
		case "errors":
			if v == "any" {
				ss.Objective.Errors = -1
				break
			}
			ss.Objective.Errors, err = parseFraction(v)
		case "precision":
			ss.Precision, err = parseFraction(v)
		case "max":
			ss.Max, err = strconv.ParseFloat(v, 64)
		case "start":
			ss.Start, err = strconv.ParseFloat(v, 64)
		case "probes":
			ss.MaxProbes, err = strconv.Atoi(v)
		default:
			err = errors.New("unknown field; want p50, p90, p99, p99.9, errors, max, start, precision or probes")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("search %s %q: %w", k, v, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return ss, err
	}
	probe := ss
	return ss, probe.normalize()
}

// parseFraction reads "0.001" or "0.1%".
func parseFraction(v string) (float64, error) {
	scale := 1.0
	if s, ok := strings.CutSuffix(v, "%"); ok {
		v, scale = s, 0.01
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		return 0, errors.New("want a fraction (0.001) or a percentage (0.1%)")
	}
	return f * scale, nil
}

// Flag returns the search as `meshbench load --search` reads it
// (ParseSearch of its fields gives ss back).
func (ss SearchSpec) Flag() string {
	o := ss.Objective
	var parts []string
	for _, b := range o.bounds() {
		parts = append(parts, strings.ReplaceAll(b.name, ".", "")+"="+b.limit.String())
	}
	errs := "any"
	if o.Errors >= 0 {
		errs = strconv.FormatFloat(o.Errors, 'g', -1, 64)
	}
	parts = append(parts, "errors="+errs, "max="+strconv.FormatFloat(ss.Max, 'g', -1, 64))
	if ss.Start > 0 {
		parts = append(parts, "start="+strconv.FormatFloat(ss.Start, 'g', -1, 64))
	}
	if ss.Precision > 0 {
		parts = append(parts, "precision="+strconv.FormatFloat(ss.Precision, 'g', -1, 64))
	}
	if ss.MaxProbes > 0 {
		parts = append(parts, "probes="+strconv.Itoa(ss.MaxProbes))
	}
	return strings.Join(parts, ",")
}
