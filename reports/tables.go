package reports

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Table is one table of the report, rendered into both report.md and
// report.html.
type Table struct {
	ID     string // anchor: summary, maxrate, added, streams, resources, balancers, invalid, …
	Title  string
	Header []string
	Rows   [][]string
	Notes  []string
}

// Fact is one line of the run's description.
type Fact struct{ Name, Value string }

// Facts describes the run: scenario, platform, times, repeats, the matrix,
// and the environment and cluster the runner recorded.
func Facts(run *Run) []Fact {
	ri := run.Info
	done := len(run.Cells) - len(run.Missing()) - len(run.NotApplicable)
	cells := fmt.Sprintf("%d done of %d (%d variants)", done, len(run.Cells), len(run.Variants))
	if n := len(run.Invalid()); n > 0 {
		cells = fmt.Sprintf("%d done of %d, %d of them invalid (%d variants)", done, len(run.Cells), n, len(run.Variants))
	}
	fs := []Fact{
		{"Scenario", ri.Scenario},
		{"Platform", ri.Platform},
		{"Started", timeText(ri.Started)},
		{"Finished", timeText(ri.Finished)},
		{"Repeats", strconv.Itoa(ri.Repeats)},
		{"Dimensions", strings.Join(ri.Dimensions, ", ")},
		{"Cells", cells},
	}
	if ri.Quick {
		fs = append(fs, Fact{"Quick", "yes: shortened durations, for a smoke test rather than a measurement"})
	}
	for _, k := range slices.Sorted(maps.Keys(ri.Env)) {
		fs = append(fs, Fact{"env " + k, anyText(ri.Env[k])})
	}
	for _, k := range slices.Sorted(maps.Keys(ri.Cluster)) {
		fs = append(fs, Fact{"cluster " + k, anyText(ri.Cluster[k])})
	}
	out := fs[:0]
	for _, f := range fs {
		if f.Value != "" {
			out = append(out, f)
		}
	}
	return out
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// anyText formats a JSON value of the environment.
func anyText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// Tables returns the report's tables: the summary per variant, the
// highest rate sustained at the objective (rate searches), the added
// latency against the baseline, the streams of mixed loads, the proxy
// comparison, the cost of mTLS, the resources per topology, the
// balancers, the variants not applicable and the invalid cells. A table
// without rows is left out.
func Tables(run *Run) []Table {
	var out []Table
	for _, t := range []Table{
		summaryTable(run), searchTable(run), addedTable(run), streamsTable(run), proxyTable(run), mtlsTable(run),
		resourceTable(run), balancerTable(run), naTable(run), invalidTable(run),
	} {
		if len(t.Rows) > 0 {
			out = append(out, t)
		}
	}
	return out
}

func summaryTable(run *Run) Table {
	t := Table{
		ID: "summary", Title: "Summary per variant",
		Header: []string{"variant", "n", "p50", "p99", "p99.9", "achieved rate", "errors", "CPU/req", "peak RSS", "proxies"},
		Notes: []string{
			"Latency from the intended send time. Each entry is the median over the repeats (n), with the smallest and largest repeat in brackets.",
			"CPU/req and peak RSS are the topology's totals over all its proxies.",
		},
	}
	if len(run.Invalid()) > 0 {
		t.Notes = append(t.Notes, "Cells whose result is invalid (see Invalid cells) are not counted; invalid: every result of the variant is.")
	}
	for _, v := range run.Variants {
		if v.onlyInvalid() {
			row := []string{v.ID, "0"}
			for range t.Header[2:] {
				row = append(row, "invalid")
			}
			t.Rows = append(t.Rows, row)
			continue
		}
		s := v.Stats
		t.Rows = append(t.Rows, []string{
			v.ID, strconv.Itoa(s.P50.N),
			FormatMicrosSpread(s.P50), FormatMicrosSpread(s.P99), FormatMicrosSpread(s.P999),
			FormatNumberSpread(s.AchievedRate, "req/s"), FormatCountSpread(s.Errors),
			FormatMicrosSpread(s.CPUPerRequest), FormatBytesSpread(s.RSSPeak), strconv.Itoa(s.Proxies),
		})
	}
	return t
}

func addedTable(run *Run) Table {
	t := Table{
		ID: "added", Title: "Added latency vs baseline",
		Header: []string{"variant", "baseline", "p50 added", "p50 ratio", "p99 added", "p99 ratio", "pairs"},
		Notes: []string{
			"Per repeat: the variant's repeat r minus the baseline's repeat r of this run (their cells ran interleaved); median (min–max) over the pairs. Ratio: variant ÷ baseline.",
		},
	}
	loose := false
	for _, c := range Compare(run) {
		if c.Baseline == nil {
			t.Rows = append(t.Rows, []string{c.Variant.ID, "none in this run", none, none, none, none, "0"})
			continue
		}
		name := c.Baseline.ID
		if c.Match == MatchLoad {
			name += " *"
			loose = true
		}
		t.Rows = append(t.Rows, []string{
			c.Variant.ID, name,
			FormatDeltaSpread(c.P50.Added), FormatRatioSpread(c.P50.Ratio),
			FormatDeltaSpread(c.P99.Added), FormatRatioSpread(c.P99.Ratio),
			strconv.Itoa(len(c.P50.Pairs)),
		})
	}
	if loose {
		t.Notes = append(t.Notes, "* baseline matched on protocol, rate, degradation and mix only: other labels differ.")
	}
	if len(searches(run)) > 0 {
		t.Notes = append(t.Notes, "Variants with a rate search are compared at the rates their searches found, which differ from variant to variant: their capacity is in the max-rate table.")
	}
	return t
}

func mtlsTable(run *Run) Table {
	t := Table{
		ID: "mtls", Title: "Cost of mTLS",
		Header: []string{"variant", "topology", "p50 added", "p50 ratio", "p99 added", "p99 ratio", "CPU/req added", "CPU/req ratio", "TLS handshakes", "pairs"},
		Notes: []string{
			"Each mtls=on variant against the variant with the same labels and mtls=off, per repeat (their cells ran interleaved); median (min–max) over the pairs. CPU/req is the topology's total over its proxies. Handshakes: TLS handshakes the proxies completed during the measured part.",
		},
	}
	for _, c := range MTLSCost(run) {
		t.Rows = append(t.Rows, []string{
			c.On.ID, c.On.Label(LabelTopology),
			FormatDeltaSpread(c.P50.Added), FormatRatioSpread(c.P50.Ratio),
			FormatDeltaSpread(c.P99.Added), FormatRatioSpread(c.P99.Ratio),
			FormatDeltaSpread(c.CPUPerRequest.Added), FormatRatioSpread(c.CPUPerRequest.Ratio),
			FormatCountSpread(c.Handshakes), strconv.Itoa(len(c.P50.Pairs)),
		})
	}
	return t
}

// proxyKinds describes a variant's proxies: "4 sidecar", "2 node".
func proxyKinds(v *Variant) string {
	n := map[string]int{}
	for _, p := range v.Stats.PerProxy {
		k := p.Kind
		if k == "" {
			k = "proxy"
		}
		n[k]++
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%d %s", n[k], k))
	}
	return strings.Join(parts, " + ")
}

// instanceRange formats the range of the instances' medians.
func instanceRange(v *Variant, get func(ProxyStats) Spread, f func(float64) string) string {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range v.Stats.PerProxy {
		if s := get(p); s.OK() {
			lo, hi = math.Min(lo, s.Median), math.Max(hi, s.Median)
		}
	}
	switch {
	case math.IsInf(lo, 1):
		return none
	case lo == hi:
		return f(lo)
	}
	return f(lo) + " – " + f(hi)
}

func resourceTable(run *Run) Table {
	t := Table{
		ID: "resources", Title: "Resources per topology",
		Header: []string{"variant", "topology", "proxies", "CPU/req total", "CPU/req per proxy", "CPU s total", "peak RSS total", "peak RSS per proxy",
			"idle RSS per proxy", "peak anon RSS per proxy"},
		Notes: []string{
			"Totals sum every proxy of the topology: median (min–max) over the repeats. Per proxy: the range of the instances' medians, from the least to the most loaded instance.",
			"Idle RSS: each proxy's RSS just before the load started. Anonymous RSS: heap and stacks, without the binary's file-backed pages (whose count depends on the page cache). " + none + " where the platform cannot tell (kube reads neither).",
		},
	}
	for _, v := range run.Variants {
		if v.Stats.Proxies == 0 {
			continue
		}
		t.Rows = append(t.Rows, []string{
			v.ID, v.Label(LabelTopology), proxyKinds(v),
			FormatMicrosSpread(v.Stats.CPUPerRequest),
			instanceRange(v, func(p ProxyStats) Spread { return p.CPUPerRequest }, FormatMicros),
			FormatNumberSpread(v.Stats.CPUSeconds, "s"),
			FormatBytesSpread(v.Stats.RSSPeak),
			instanceRange(v, func(p ProxyStats) Spread { return p.RSSPeak }, FormatBytes),
			instanceRange(v, func(p ProxyStats) Spread { return p.IdleRSS }, FormatBytes),
			instanceRange(v, func(p ProxyStats) Spread { return p.AnonPeak }, FormatBytes),
		})
	}
	return t
}

// slowPod returns the pod the cell's events changed, or "".
func slowPod(c *Cell) string {
	if c.Valid() {
		for _, e := range c.Result.Events {
			if e.Pod != "" {
				return e.Pod
			}
		}
	}
	return ""
}

// BalancerRow is a variant's balancing outcome.
type BalancerRow struct {
	Variant *Variant
	// SlowPod is the pod the cell's events degraded, "" when there were
	// none.
	SlowPod string
	// SlowShare is the slow pod's share of the responses per repeat.
	SlowShare Spread
	// Endpoints is how many endpoints answered (over all repeats).
	Endpoints int
}

// Balancers returns a row for every variant that names a balancer,
// grouped by degradation in the order degradations first appear.
func Balancers(run *Run) []BalancerRow {
	var rows []BalancerRow
	order := map[string]int{}
	for _, v := range run.Variants {
		b := v.Label(LabelBalancer)
		if b == "" || b == "none" {
			continue
		}
		if _, ok := order[v.Label(LabelDegradation)]; !ok {
			order[v.Label(LabelDegradation)] = len(order)
		}
		row := BalancerRow{Variant: v, Endpoints: len(endpointCounts(v))}
		var shares []float64
		for _, c := range v.Done() {
			pod := slowPod(c)
			if pod == "" {
				continue
			}
			row.SlowPod = pod
			var sum int64
			for _, n := range c.Result.Endpoints {
				sum += n
			}
			if sum > 0 {
				shares = append(shares, float64(c.Result.Endpoints[pod])/float64(sum))
			}
		}
		row.SlowShare = SpreadOf(shares)
		rows = append(rows, row)
	}
	slices.SortStableFunc(rows, func(a, b BalancerRow) int {
		return order[a.Variant.Label(LabelDegradation)] - order[b.Variant.Label(LabelDegradation)]
	})
	return rows
}

func balancerTable(run *Run) Table {
	t := Table{
		ID: "balancers", Title: "Balancers",
		Header: []string{"variant", "balancer", "degradation", "p99", "slow pod", "slow pod share", "even share"},
		Notes: []string{
			"The slow pod is the one the cell's events degraded; its share of the responses per repeat, median (min–max). Even share: one over the endpoints that answered. A balancer that steers around a slow pod gives it less than the even share.",
		},
	}
	for _, r := range Balancers(run) {
		even := none
		if r.Endpoints > 0 {
			even = FormatPercent(1 / float64(r.Endpoints))
		}
		pod := r.SlowPod
		if pod == "" {
			pod = none
		}
		deg := r.Variant.Label(LabelDegradation)
		if deg == "" {
			deg = none
		}
		t.Rows = append(t.Rows, []string{
			r.Variant.ID, r.Variant.Label(LabelBalancer), deg,
			FormatMicrosSpread(r.Variant.Stats.P99), pod, FormatPercentSpread(r.SlowShare), even,
		})
	}
	return t
}

// proxyTable sets the proxies of a run side by side: for each variant
// with a proxy and a baseline, what it adds to the baseline and what it
// costs, the variants that differ only by proxy adjacent (degraded cells,
// which have no baseline, are in the balancers table). It is empty unless
// the run compares two proxies or more.
func proxyTable(run *Run) Table {
	t := Table{
		ID: "proxies", Title: "Proxy comparison",
		Header: []string{"proxy", "topology", "variant", "p50 added", "p99 added", "CPU/req total", "CPU/req per instance", "peak RSS per instance", "errors"},
		Notes: []string{
			"Added latency per repeat against the baseline of this run (cells interleaved), median (min–max) over the pairs. CPU/req total sums every proxy of the topology; per instance: the range of the instances' medians. Every proxy runs one worker (docs/peers.md).",
		},
	}
	cmps := proxyComparisons(run)
	var notes []string
	for _, c := range cmps {
		v := c.Variant
		for _, n := range variantNotes(v) {
			if line := v.Label(LabelProxy) + " as " + v.Label(LabelTopology) + ": " + n; !slices.Contains(notes, line) {
				notes = append(notes, line)
			}
		}
		p50, p99 := FormatDeltaSpread(c.P50.Added), FormatDeltaSpread(c.P99.Added)
		t.Rows = append(t.Rows, []string{
			v.Label(LabelProxy), v.Label(LabelTopology), v.ID, p50, p99,
			FormatMicrosSpread(v.Stats.CPUPerRequest),
			instanceRange(v, func(p ProxyStats) Spread { return p.CPUPerRequest }, FormatMicros),
			instanceRange(v, func(p ProxyStats) Spread { return p.RSSPeak }, FormatBytes),
			FormatCountSpread(v.Stats.Errors),
		})
	}
	t.Notes = append(t.Notes, notes...)
	return t
}

// proxyComparisons are the comparisons the proxy table and charts show:
// the variants with a proxy and a baseline, those that differ only by
// proxy adjacent (groups in the order they first ran, proxies in run
// order within a group); none unless the run compares two proxies or
// more.
func proxyComparisons(run *Run) []Comparison {
	proxies := map[string]bool{}
	for _, v := range run.Variants {
		if p := v.Label(LabelProxy); p != "" && p != "none" {
			proxies[p] = true
		}
	}
	for _, c := range run.NotApplicable {
		if p := c.Info.Labels[LabelProxy]; p != "" {
			proxies[p] = true
		}
	}
	if len(proxies) < 2 {
		return nil
	}
	var cmps []Comparison
	for _, c := range Compare(run) {
		if c.Baseline != nil && c.Variant.Label(LabelProxy) != "" {
			cmps = append(cmps, c)
		}
	}
	key := func(v *Variant) string {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(v.Labels)) {
			if k != LabelProxy {
				parts = append(parts, k+"="+v.Labels[k])
			}
		}
		return strings.Join(parts, ",")
	}
	first := map[string]int{}
	for i, c := range cmps {
		if _, ok := first[key(c.Variant)]; !ok {
			first[key(c.Variant)] = i
		}
	}
	slices.SortStableFunc(cmps, func(a, b Comparison) int { return first[key(a.Variant)] - first[key(b.Variant)] })
	return cmps
}

// variantNotes returns the parity notes of a variant's cells, each once.
func variantNotes(v *Variant) []string {
	var out []string
	for _, c := range v.Done() {
		for _, n := range c.Result.Notes {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// naTable lists the variants that were not run because their proxy lacks
// what they need, with the reason: nothing else ran in their place.
func naTable(run *Run) Table {
	t := Table{
		ID: "na", Title: "Not applicable (n/a)",
		Header: []string{"variant", "proxy", "reason"},
		Notes:  []string{"These variants were not run, and nothing was run in their place: the proxy (or the load engine) lacks what the cell needs."},
	}
	for _, c := range run.NotApplicable {
		t.Rows = append(t.Rows, []string{c.Info.Variant, c.Info.Labels[LabelProxy], "n/a — " + c.Info.Error})
	}
	return t
}

// invalidTable lists the cells whose result is not a valid measurement,
// with the reason: they are left out of every statistic and plot.
func invalidTable(run *Run) Table {
	t := Table{
		ID: "invalid", Title: "Invalid cells",
		Header: []string{"cell", "reason"},
		Notes:  []string{"These cells finished, but their load generator could not keep its schedule (it fell behind the rate, sent late, waited for connections or ran out of CPU), so their figures measure the generator, not the proxy. They are left out of every statistic, comparison and plot."},
	}
	for _, c := range run.Invalid() {
		t.Rows = append(t.Rows, []string{c.Info.ID, c.Result.Invalid})
	}
	return t
}
