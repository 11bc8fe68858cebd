package backends_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/backends"
)

const samples = 20000

func newRNG() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

// draw parses spec and returns n samples of its base distribution in
// milliseconds.
func draw(t *testing.T, spec string, n int) []float64 {
	t.Helper()
	l, err := backends.ParseLatency(spec)
	if err != nil {
		t.Fatalf("ParseLatency(%q): %v", spec, err)
	}
	rng := newRNG()
	out := make([]float64, n)
	for i := range out {
		d := l.Sample(rng)
		if d < 0 {
			t.Fatalf("%s: negative sample %s", spec, d)
		}
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}

func meanSD(xs []float64) (mean, sd float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		sd += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sd / float64(len(xs)-1))
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// near fails unless got is within tol of want. The sample tests draw from
// a seeded source, so their verdict is the same on every run; each
// tolerance is at least 5 standard errors of its statistic for the
// sample size, so that a different seed or draw order would fail a
// correct distribution with probability below 1e-6.
func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.4f, want %.4f ± %.4f", what, got, want, tol)
	}
}

func TestParseLatencyCanonical(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"", "none"},
		{"none", "none"},
		{" fixed:2ms ", "fixed:2ms"},
		{"uniform:1ms-5ms", "uniform:1ms-5ms"},
		{"normal:5ms/1ms", "normal:5ms/1ms"},
		{"lognormal:4ms/0.5", "lognormal:4ms/0.5"},
		{"bimodal:1ms/50ms@0.05", "bimodal:1ms/50ms@0.05"},
		{"stall:3s/300ms", "stall:3s/300ms"},
		{"fixed:1500us, stall:3000ms/300ms", "fixed:1.5ms,stall:3s/300ms"},
		{"stall:1s/100ms,uniform:0s-2ms", "uniform:0s-2ms,stall:1s/100ms"},
	} {
		l, err := backends.ParseLatency(tc.spec)
		if err != nil {
			t.Errorf("ParseLatency(%q): %v", tc.spec, err)
			continue
		}
		if got := l.String(); got != tc.want {
			t.Errorf("ParseLatency(%q).String() = %q, want %q", tc.spec, got, tc.want)
		}
		again, err := backends.ParseLatency(l.String())
		if err != nil || again.String() != l.String() {
			t.Errorf("round trip of %q: %v %q", l, err, again)
		}
	}
	if !backends.MustParseLatency("none").IsZero() || backends.MustParseLatency("fixed:0s").IsZero() {
		t.Error("IsZero wrong")
	}
}

func TestLatencyNone(t *testing.T) {
	var l backends.Latency
	if d := l.Delay(time.Now(), time.Now(), newRNG()); d != 0 {
		t.Errorf("zero Latency delay = %s", d)
	}
}

func TestLatencyFixed(t *testing.T) {
	for _, x := range draw(t, "fixed:2ms", 100) {
		if x != 2 {
			t.Fatalf("fixed:2ms sampled %vms", x)
		}
	}
}

func TestLatencyUniform(t *testing.T) {
	xs := draw(t, "uniform:1ms-5ms", samples)
	lo, hi := slices.Min(xs), slices.Max(xs)
	if lo < 1 || hi > 5 {
		t.Errorf("samples outside [1ms, 5ms]: min %v max %v", lo, hi)
	}
	if lo > 1.01 || hi < 4.99 {
		t.Errorf("samples do not cover [1ms, 5ms]: min %v max %v", lo, hi)
	}
	mean, sd := meanSD(xs)
	near(t, "uniform mean", mean, 3, 0.05)
	near(t, "uniform sd", sd, 4/math.Sqrt(12), 0.06)
}

func TestLatencyNormal(t *testing.T) {
	mean, sd := meanSD(draw(t, "normal:10ms/2ms", samples))
	near(t, "normal mean", mean, 10, 0.075)
	near(t, "normal sd", sd, 2, 0.05)

	// Clamped at 0: with mean 1ms and sd 2ms, P(X <= 0) = Phi(-0.5) = 0.3085.
	xs := draw(t, "normal:1ms/2ms", samples)
	zeros := 0
	for _, x := range xs {
		if x == 0 {
			zeros++
		}
	}
	near(t, "share clamped to 0", float64(zeros)/samples, 0.3085, 0.017)
}

func TestLatencyLognormal(t *testing.T) {
	xs := draw(t, "lognormal:4ms/0.5", samples)
	near(t, "lognormal median", median(xs), 4, 0.1)
	// The log of the samples is normal with mu = ln 4 and sigma 0.5.
	logs := make([]float64, len(xs))
	for i, x := range xs {
		logs[i] = math.Log(x)
	}
	mu, sigma := meanSD(logs)
	near(t, "lognormal mu", mu, math.Log(4), 0.02)
	near(t, "lognormal sigma", sigma, 0.5, 0.02)
}

func TestLatencyBimodal(t *testing.T) {
	xs := draw(t, "bimodal:1ms/50ms@0.1", samples)
	slow := 0
	for _, x := range xs {
		switch x {
		case 50:
			slow++
		case 1:
		default:
			t.Fatalf("bimodal sampled %vms, want 1 or 50", x)
		}
	}
	near(t, "share of slow samples", float64(slow)/samples, 0.1, 0.02)
}

func TestLatencyStall(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	ms := time.Millisecond
	for _, tc := range []struct {
		spec    string
		arrival time.Duration
		want    time.Duration
	}{
		// Windows of stall:1s/300ms are [1s, 1.3s), [2s, 2.3s), ...
		{"stall:1s/300ms", 500 * ms, 0},                    // before the first window
		{"stall:1s/300ms", 0, 0},                           // no window at the start
		{"stall:1s/300ms", 1000 * ms, 300 * ms},            // at a window's start
		{"stall:1s/300ms", 1100 * ms, 200 * ms},            // inside: wait for its end
		{"stall:1s/300ms", 1300 * ms, 0},                   // just after
		{"stall:1s/300ms", 5299 * ms, 1 * ms},              // a later window
		{"fixed:50ms,stall:1s/300ms", 900 * ms, 50 * ms},   // completes before the window
		{"fixed:50ms,stall:1s/300ms", 960 * ms, 340 * ms},  // completes inside: held to 1.3s
		{"fixed:50ms,stall:1s/300ms", 1260 * ms, 50 * ms},  // completes after the window
		{"fixed:50ms,stall:1s/300ms", 1200 * ms, 100 * ms}, // arrives inside, held to 1.3s
	} {
		l := backends.MustParseLatency(tc.spec)
		if got := l.Delay(at(tc.arrival), start, newRNG()); got != tc.want {
			t.Errorf("%s arriving at +%s: delay %s, want %s", tc.spec, tc.arrival, got, tc.want)
		}
	}
	every, length := backends.MustParseLatency("fixed:1ms,stall:3s/300ms").Stall()
	if every != 3*time.Second || length != 300*ms {
		t.Errorf("Stall() = %s, %s", every, length)
	}
}

func TestParseLatencyErrors(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		want       []string
	}{
		{"unknown kind", "gamma:1ms", []string{`latency "gamma:1ms": unknown kind "gamma"`, backends.LatencyGrammar}},
		{"no kind", "2ms", []string{`term "2ms" has no KIND: prefix`, backends.LatencyGrammar}},
		{"bad duration", "fixed:2", []string{`"2" is not a duration`, "want fixed:D, e.g. fixed:2ms"}},
		{"negative duration", "fixed:-2ms", []string{`duration "-2ms" is negative`}},
		{"too long", "fixed:2h", []string{"longer than 1h0m0s"}},
		{"uniform shape", "uniform:5ms", []string{`latency "uniform:5ms": want uniform:MIN-MAX, e.g. uniform:1ms-5ms`}},
		{"uniform order", "uniform:5ms-1ms", []string{"MIN 5ms is greater than MAX 1ms", "want uniform:MIN-MAX"}},
		{"normal shape", "normal:5ms", []string{"want normal:MEAN/STDDEV, e.g. normal:5ms/1ms"}},
		{"lognormal sigma", "lognormal:4ms/-1", []string{`SIGMA "-1" is not a non-negative number`, "want lognormal:MEDIAN/SIGMA"}},
		{"lognormal median", "lognormal:0s/0.5", []string{"MEDIAN must be positive"}},
		{"bimodal shape", "bimodal:1ms/50ms", []string{"want bimodal:FAST/SLOW@P, e.g. bimodal:1ms/50ms@0.05"}},
		{"bimodal probability", "bimodal:1ms/50ms@1.5", []string{`P "1.5" is not a probability in [0, 1]`}},
		{"stall shape", "stall:3s", []string{"want stall:EVERY/FOR with 0 < FOR < EVERY"}},
		{"stall too long", "stall:1s/2s", []string{"stall of 2s every 1s; want stall:EVERY/FOR"}},
		{"two distributions", "fixed:1ms,uniform:1ms-2ms", []string{"more than one distribution (fixed:1ms and uniform:1ms-2ms)"}},
		{"two stalls", "stall:1s/1ms,stall:2s/1ms", []string{"more than one stall term"}},
		{"none combined", "none,stall:1s/1ms", []string{"none cannot be combined"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := backends.ParseLatency(tc.spec)
			if err == nil {
				t.Fatalf("ParseLatency(%q) succeeded", tc.spec)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
