package backends

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// LatencyGrammar summarises the latency spec grammar; parse errors repeat it.
const LatencyGrammar = "none | DIST | DIST,stall:EVERY/FOR | stall:EVERY/FOR, " +
	"where DIST is fixed:D | uniform:MIN-MAX | normal:MEAN/STDDEV | " +
	"lognormal:MEDIAN/SIGMA | bimodal:FAST/SLOW@P"

// MaxDelay caps every sampled delay, so that a long-tailed distribution
// cannot produce a delay that outlives any test or benchmark.
const MaxDelay = time.Hour

// Latency is a parsed latency personality: a base distribution of service
// times, optionally combined with periodic stalls. The zero Latency adds no
// delay. A Latency is immutable and safe for concurrent use; the random
// source passed to its methods is not.
type Latency struct {
	dist       distribution // nil: no base delay
	stallEvery time.Duration
	stallFor   time.Duration
}

// distribution is one base delay distribution.
type distribution interface {
	sample(rng *rand.Rand) time.Duration
	String() string
}

// ParseLatency parses a latency spec. The grammar (see LatencyGrammar) is
// a comma-separated list of at most one distribution and at most one stall
// term; "none" or the empty string means no delay. D, MIN, MAX, MEAN,
// STDDEV, MEDIAN, FAST, SLOW, EVERY and FOR are Go durations (time.ParseDuration,
// e.g. 1.5ms, 300us, 2s), SIGMA is a non-negative number, P a probability in
// [0, 1]:
//
//	fixed:2ms                   always 2 ms
//	uniform:1ms-5ms             uniform in [1 ms, 5 ms]
//	normal:5ms/1ms              normal with mean 5 ms, standard deviation 1 ms, clamped at 0
//	lognormal:4ms/0.5           log-normal with median 4 ms (mu = ln 4ms), sigma 0.5
//	bimodal:1ms/50ms@0.05       1 ms, or 50 ms with probability 0.05
//	stall:3s/300ms              a 300 ms stall every 3 s (see Latency.Delay)
//	fixed:2ms,stall:3s/300ms    both
func ParseLatency(spec string) (Latency, error) {
	var l Latency
	s := strings.TrimSpace(spec)
	if s == "" || s == "none" {
		return l, nil
	}
	haveStall := false
	for term := range strings.SplitSeq(s, ",") {
		term = strings.TrimSpace(term)
		kind, args, ok := strings.Cut(term, ":")
		if !ok {
			if term == "none" {
				return Latency{}, fmt.Errorf("latency %q: none cannot be combined with other terms; want %s", spec, LatencyGrammar)
			}
			return Latency{}, fmt.Errorf("latency %q: term %q has no KIND: prefix; want %s", spec, term, LatencyGrammar)
		}
		if kind == "stall" {
			if haveStall {
				return Latency{}, fmt.Errorf("latency %q: more than one stall term; want %s", spec, LatencyGrammar)
			}
			every, dur, err := parseStall(args)
			if err != nil {
				return Latency{}, fmt.Errorf("latency %q: %w", spec, err)
			}
			l.stallEvery, l.stallFor, haveStall = every, dur, true
			continue
		}
		if l.dist != nil {
			return Latency{}, fmt.Errorf("latency %q: more than one distribution (%s and %s); want %s", spec, l.dist, term, LatencyGrammar)
		}
		d, err := parseDist(kind, args)
		if err != nil {
			return Latency{}, fmt.Errorf("latency %q: %w", spec, err)
		}
		l.dist = d
	}
	return l, nil
}

// MustParseLatency is ParseLatency for specs known to be valid, such as
// constants in tests; it panics on an error.
func MustParseLatency(spec string) Latency {
	l, err := ParseLatency(spec)
	if err != nil {
		panic(err)
	}
	return l
}

// formOf returns the grammar of one kind of term with an example.
func formOf(kind string) (string, bool) {
	switch kind {
	case "fixed":
		return "fixed:D, e.g. fixed:2ms", true
	case "uniform":
		return "uniform:MIN-MAX, e.g. uniform:1ms-5ms", true
	case "normal":
		return "normal:MEAN/STDDEV, e.g. normal:5ms/1ms", true
	case "lognormal":
		return "lognormal:MEDIAN/SIGMA, e.g. lognormal:4ms/0.5", true
	case "bimodal":
		return "bimodal:FAST/SLOW@P, e.g. bimodal:1ms/50ms@0.05", true
	case "stall":
		return "stall:EVERY/FOR with 0 < FOR < EVERY, e.g. stall:3s/300ms", true
	}
	return "", false
}

func parseDist(kind, args string) (distribution, error) {
	form, ok := formOf(kind)
	if !ok || kind == "stall" {
		return nil, fmt.Errorf("unknown kind %q; want %s", kind, LatencyGrammar)
	}
	bad := func(why string) error {
		if why != "" {
			return fmt.Errorf("%s; want %s", why, form)
		}
		return fmt.Errorf("want %s", form)
	}
	switch kind {
	case "fixed":
		d, err := parseDelay(args)
		if err != nil {
			return nil, bad(err.Error())
		}
		return fixedDist{d}, nil
	case "uniform":
		a, b, ok := strings.Cut(args, "-")
		if !ok {
			return nil, bad("")
		}
		lo, err := parseDelay(a)
		if err != nil {
			return nil, bad(err.Error())
		}
		hi, err := parseDelay(b)
		if err != nil {
			return nil, bad(err.Error())
		}
		if hi < lo {
			return nil, bad(fmt.Sprintf("MIN %s is greater than MAX %s", lo, hi))
		}
		return uniformDist{lo, hi}, nil
	case "normal":
		a, b, ok := strings.Cut(args, "/")
		if !ok {
			return nil, bad("")
		}
		mean, err := parseDelay(a)
		if err != nil {
			return nil, bad(err.Error())
		}
		sd, err := parseDelay(b)
		if err != nil {
			return nil, bad(err.Error())
		}
		return normalDist{mean, sd}, nil
	case "lognormal":
		a, b, ok := strings.Cut(args, "/")
		if !ok {
			return nil, bad("")
		}
		median, err := parseDelay(a)
		if err != nil {
			return nil, bad(err.Error())
		}
		if median == 0 {
			return nil, bad("MEDIAN must be positive")
		}
		sigma, err := strconv.ParseFloat(b, 64)
		if err != nil || sigma < 0 || math.IsInf(sigma, 0) || math.IsNaN(sigma) {
			return nil, bad(fmt.Sprintf("SIGMA %q is not a non-negative number", b))
		}
		return lognormalDist{median, sigma}, nil
	default: // bimodal
		ds, ps, ok := strings.Cut(args, "@")
		if !ok {
			return nil, bad("")
		}
		a, b, ok := strings.Cut(ds, "/")
		if !ok {
			return nil, bad("")
		}
		fast, err := parseDelay(a)
		if err != nil {
			return nil, bad(err.Error())
		}
		slow, err := parseDelay(b)
		if err != nil {
			return nil, bad(err.Error())
		}
		p, err := strconv.ParseFloat(ps, 64)
		if err != nil || !(p >= 0 && p <= 1) {
			return nil, bad(fmt.Sprintf("P %q is not a probability in [0, 1]", ps))
		}
		return bimodalDist{fast, slow, p}, nil
	}
}

func parseStall(args string) (every, dur time.Duration, err error) {
	form, _ := formOf("stall")
	a, b, ok := strings.Cut(args, "/")
	if !ok {
		return 0, 0, fmt.Errorf("want %s", form)
	}
	if every, err = parseDelay(a); err != nil {
		return 0, 0, fmt.Errorf("%v; want %s", err, form)
	}
	if dur, err = parseDelay(b); err != nil {
		return 0, 0, fmt.Errorf("%v; want %s", err, form)
	}
	if dur <= 0 || dur >= every {
		return 0, 0, fmt.Errorf("stall of %s every %s; want %s", dur, every, form)
	}
	return every, dur, nil
}

// parseDelay parses a non-negative duration no longer than MaxDelay.
func parseDelay(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	if d > MaxDelay {
		return 0, fmt.Errorf("duration %q is longer than %s", s, MaxDelay)
	}
	return d, nil
}

// String returns the spec in canonical form; ParseLatency of it gives an
// equal Latency. The zero Latency is "none".
func (l Latency) String() string {
	var terms []string
	if l.dist != nil {
		terms = append(terms, l.dist.String())
	}
	if l.stallEvery > 0 {
		terms = append(terms, fmt.Sprintf("stall:%s/%s", l.stallEvery, l.stallFor))
	}
	if len(terms) == 0 {
		return "none"
	}
	return strings.Join(terms, ",")
}

// IsZero reports whether l adds no delay at all.
func (l Latency) IsZero() bool { return l.dist == nil && l.stallEvery == 0 }

// Stall returns the stall period and the stall length; both are 0 when l
// has no stall term.
func (l Latency) Stall() (every, length time.Duration) { return l.stallEvery, l.stallFor }

// Sample draws one delay from the base distribution (0 when there is none).
// Stalls are not included; see Delay.
func (l Latency) Sample(rng *rand.Rand) time.Duration {
	if l.dist == nil {
		return 0
	}
	return l.dist.sample(rng)
}

// Delay returns how long a request that arrives at now should wait before
// it is answered, for a backend that started at start. It draws a base
// delay d from the distribution; with a stall term, stall windows are
// [start + k*EVERY, start + k*EVERY + FOR) for k = 1, 2, ..., and a
// request whose completion time now+d falls inside a window waits until
// that window ends, like a request caught by a stop-the-world pause. A
// request that completes outside every window is not delayed further.
func (l Latency) Delay(now, start time.Time, rng *rand.Rand) time.Duration {
	d := l.Sample(rng)
	if l.stallEvery == 0 {
		return d
	}
	since := now.Sub(start)
	done := since + d
	k := done / l.stallEvery
	if k < 1 {
		return d
	}
	if end := k*l.stallEvery + l.stallFor; done < end {
		return end - since
	}
	return d
}

type fixedDist struct{ d time.Duration }

func (f fixedDist) sample(*rand.Rand) time.Duration { return f.d }
func (f fixedDist) String() string                  { return "fixed:" + f.d.String() }

type uniformDist struct{ lo, hi time.Duration }

func (u uniformDist) sample(rng *rand.Rand) time.Duration {
	if u.hi == u.lo {
		return u.lo
	}
	return u.lo + time.Duration(rng.Int64N(int64(u.hi-u.lo)+1))
}
func (u uniformDist) String() string { return fmt.Sprintf("uniform:%s-%s", u.lo, u.hi) }

type normalDist struct{ mean, sd time.Duration }

func (n normalDist) sample(rng *rand.Rand) time.Duration {
	return clampDelay(float64(n.mean) + rng.NormFloat64()*float64(n.sd))
}
func (n normalDist) String() string { return fmt.Sprintf("normal:%s/%s", n.mean, n.sd) }

type lognormalDist struct {
	median time.Duration
	sigma  float64
}

func (l lognormalDist) sample(rng *rand.Rand) time.Duration {
	return clampDelay(float64(l.median) * math.Exp(l.sigma*rng.NormFloat64()))
}
func (l lognormalDist) String() string {
	return fmt.Sprintf("lognormal:%s/%s", l.median, strconv.FormatFloat(l.sigma, 'g', -1, 64))
}

type bimodalDist struct {
	fast, slow time.Duration
	p          float64
}

func (b bimodalDist) sample(rng *rand.Rand) time.Duration {
	if rng.Float64() < b.p {
		return b.slow
	}
	return b.fast
}
func (b bimodalDist) String() string {
	return fmt.Sprintf("bimodal:%s/%s@%s", b.fast, b.slow, strconv.FormatFloat(b.p, 'g', -1, 64))
}

// clampDelay converts nanoseconds to a delay in [0, MaxDelay].
func clampDelay(ns float64) time.Duration {
	switch {
	case !(ns > 0):
		return 0
	case ns >= float64(MaxDelay):
		return MaxDelay
	}
	return time.Duration(ns)
}
