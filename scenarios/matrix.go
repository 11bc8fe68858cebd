package scenarios

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/meshbench/meshbench/reports/result"
)

// Dimensions a matrix can have; they are the keys of a cell's labels.
const (
	DimTopology    = "topology"
	DimProxy       = "proxy"
	DimBalancer    = "balancer"
	DimProtocol    = "protocol"
	DimDegradation = "degradation"
	DimMTLS        = "mtls"
	// DimRate is added after the matrix's dimensions when the load sweeps
	// rates (load.rates).
	DimRate = "rate"
)

// Values of dimensions that are not choices of the file.
const (
	// None is the proxy and balancer label of a baseline cell, and the
	// built-in degradation that changes nothing.
	None = "none"
	// ProxyReference is the project's own proxy, meshproxy.
	ProxyReference = "reference"
	MTLSOff        = "off"
	MTLSOn         = "on"
)

// matrixDims lists the dimensions of the matrix block, as YAML keys.
func matrixDims() []string {
	return []string{DimTopology, DimProxy, DimBalancer, DimProtocol, DimDegradation, DimMTLS, DimMix}
}

// dimension is one dimension of a run and its values, as label values.
type dimension struct {
	name   string
	values []string
}

// variant is one combination of the matrix.
type variant struct {
	id     string
	labels map[string]string
}

// CellOptions choose the cells of a run.
type CellOptions struct {
	// Quick applies the scenario's quick overrides.
	Quick bool
	// Repeats overrides the number of repeats; 0 keeps the scenario's
	// (or, with Quick, the quick block's).
	Repeats int
}

// Dimensions returns the run's dimensions in the file's order; the rate
// dimension of a sweep comes last. Dimensions absent from the matrix are
// not dimensions of the run.
func (s *Scenario) Dimensions() []string {
	out := make([]string, len(s.dims))
	for i, d := range s.dims {
		out[i] = d.name
	}
	return out
}

// Cells returns the cells of a run, repeat-major and interleaved: every
// variant of repeat 1, then every variant of repeat 2, and so on, so that
// slow drifts of the machine spread over all variants alike. Even repeats
// run the variants in reverse order (A B, B A, A B, ...), so that no
// variant always runs first of a pair (the two builds of an A/B run sit
// side by side). Every cell is pending.
func (s *Scenario) Cells(o CellOptions) ([]result.Cell, error) {
	vs, err := s.variants(o.Quick)
	if err != nil {
		return nil, fmt.Errorf("expanding the matrix of %s: %w", s.Name, err)
	}
	n := s.repeats(o)
	cells := make([]result.Cell, 0, n*len(vs))
	for r := 1; r <= n; r++ {
		order := vs
		if r%2 == 0 {
			order = slices.Clone(vs)
			slices.Reverse(order)
		}
		for _, v := range order {
			cells = append(cells, result.Cell{
				ID:      v.id + "-r" + strconv.Itoa(r),
				Variant: v.id,
				Labels:  maps.Clone(v.labels),
				Repeat:  r,
				Status:  result.StatusPending,
			})
		}
	}
	return cells, nil
}

// runDims returns the dimensions with the values of a normal or a quick
// run (a quick block may replace the rates of a sweep).
func (s *Scenario) runDims(quick bool) []dimension {
	l := s.effectiveLoad(quick)
	out := slices.Clone(s.dims)
	for i, d := range out {
		if d.name == DimRate {
			out[i].values = rateLabels(l.Rates)
		}
	}
	return out
}

// variants expands the matrix: the cartesian product in dimension order,
// without the excluded combinations, plus the included ones, baseline
// cells relabelled (no proxy, no balancer, no mTLS) and duplicates removed.
func (s *Scenario) variants(quick bool) ([]variant, error) {
	dims := s.runDims(quick)
	var combos []map[string]string
	var walk func(i int, cur map[string]string)
	walk = func(i int, cur map[string]string) {
		if i == len(dims) {
			combos = append(combos, maps.Clone(cur))
			return
		}
		for _, v := range dims[i].values {
			cur[dims[i].name] = v
			walk(i+1, cur)
		}
	}
	walk(0, map[string]string{})

	var out []variant
	seen := map[string]string{} // id -> canonical labels
	add := func(labels map[string]string) error {
		normalize(labels)
		id, key := variantID(s.Name, dims, labels), labelKey(dims, labels)
		if k, dup := seen[id]; dup {
			if k != key {
				return fmt.Errorf("variants %s and %s have the same ID %q", k, key, id)
			}
			return nil
		}
		seen[id] = key
		out = append(out, variant{id: id, labels: labels})
		return nil
	}
	for _, c := range combos {
		normalize(c)
		if slices.ContainsFunc(s.Matrix.Exclude, func(e map[string]string) bool { return matches(c, e) }) {
			continue
		}
		if err := add(c); err != nil {
			return nil, err
		}
	}
	for _, inc := range s.Matrix.Include {
		c := map[string]string{}
		skip := false
		for _, d := range dims {
			v, ok := inc[d.name]
			if !ok {
				v = d.values[0]
			} else if d.name == DimRate {
				// A rate this run does not sweep (a quick run's rates
				// differ) is left out.
				v = rateLabel(mustRate(v))
				skip = !slices.Contains(d.values, v)
			}
			c[d.name] = v
		}
		if skip {
			continue
		}
		if err := add(c); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("every combination is excluded")
	}
	return out, nil
}

// normalize relabels a combination whose topology cannot have some of its
// choices: baseline has no proxy, hence no balancer and no mTLS; the
// one-sided topologies (client-sidecar, server-sidecar) have one proxy on
// the path, which cannot do mTLS with itself, so their mTLS is off.
func normalize(labels map[string]string) {
	switch labels[DimTopology] {
	case ClientSidecar, ServerSidecar:
		if _, ok := labels[DimMTLS]; ok {
			labels[DimMTLS] = MTLSOff
		}
		return
	case Baseline:
	default:
		return
	}
	for dim, v := range map[string]string{DimProxy: None, DimBalancer: None, DimMTLS: MTLSOff} {
		if _, ok := labels[dim]; ok {
			labels[dim] = v
		}
	}
}

// matches reports whether labels has every key of rule with its value.
func matches(labels, rule map[string]string) bool {
	for k, v := range rule {
		if k == DimRate {
			if r, err := parseRate(v); err == nil {
				v = rateLabel(r)
			}
		}
		if labels[k] != v {
			return false
		}
	}
	return true
}

// variantID joins the label values in dimension order with "-"; rates
// read r<rate>, builds reference-<build>. A matrix without dimensions has one variant, named after
// the scenario.
func variantID(name string, dims []dimension, labels map[string]string) string {
	if len(dims) == 0 {
		return name
	}
	parts := make([]string, len(dims))
	for i, d := range dims {
		// A build's proxy value reads reference-<build> in an ID, which
		// names a directory (names.Safe).
		parts[i] = strings.ReplaceAll(labels[d.name], BuildSep, "-")
		if d.name == DimRate {
			parts[i] = "r" + parts[i]
		}
	}
	return strings.Join(parts, "-")
}

// labelKey renders labels as dim=value pairs in dimension order.
func labelKey(dims []dimension, labels map[string]string) string {
	parts := make([]string, len(dims))
	for i, d := range dims {
		parts[i] = d.name + "=" + labels[d.name]
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// rateLabel formats a rate as a label value: the shortest decimal form.
func rateLabel(r float64) string { return strconv.FormatFloat(r, 'f', -1, 64) }

func rateLabels(rs []float64) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = rateLabel(r)
	}
	return out
}

// parseRate parses a rate label ("400"; "r400" is accepted too).
func parseRate(s string) (float64, error) {
	r, err := strconv.ParseFloat(strings.TrimPrefix(s, "r"), 64)
	if err != nil || !(r > 0) {
		return 0, fmt.Errorf("%q: not a rate (requests/s > 0)", s)
	}
	return r, nil
}

// mustRate is parseRate for values validation already accepted.
func mustRate(s string) float64 {
	r, _ := parseRate(s)
	return r
}

// matrixOrder returns the matrix dimensions in the order the document
// writes them. Errors of the document's shape are the strict decoder's to
// report; here they yield no order.
func matrixOrder(data []byte) ([]string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := deref(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "matrix" {
			continue
		}
		m := deref(root.Content[i+1])
		if m.Kind != yaml.MappingNode {
			return nil, nil
		}
		var order []string
		for j := 0; j+1 < len(m.Content); j += 2 {
			if k := m.Content[j].Value; slices.Contains(matrixDims(), k) && !slices.Contains(order, k) {
				order = append(order, k)
			}
		}
		return order, nil
	}
	return nil, nil
}

func deref(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}
