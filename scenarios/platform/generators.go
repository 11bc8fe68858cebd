package platform

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/meshbench/meshbench/loadgen"
	"github.com/meshbench/meshbench/reports/result"
	"github.com/meshbench/meshbench/scenarios"
)

// Generator is the load of one of a cell's load generators.
type Generator struct {
	// Name is "" for a cell's only generator, else g0, g1, ...
	Name string
	// Node is the plan node the generator runs on ("" for the only one:
	// the client pod's).
	Node string
	Load scenarios.LoadPlan
}

// GeneratorLoads returns the load of each generator of a load plan: the
// plan itself for one generator; for several, each one's targets, its
// share of the rate (rate/N) and of the connections (C/N, rounded up, at
// least the targets' count), all on the one schedule that the platform
// gives with --start-at.
func GeneratorLoads(l scenarios.LoadPlan) []Generator {
	n := len(l.Generators)
	if n == 0 {
		return []Generator{{Load: l}}
	}
	split := func(c, targets int) int { return max((c+n-1)/n, targets, 1) }
	out := make([]Generator, n)
	for i, g := range l.Generators {
		gl := l
		gl.Generators = nil
		gl.Rate = l.Rate / float64(n)
		gl.Targets = slices.Clone(g.Targets)
		if l.Connections > 0 {
			gl.Connections = split(l.Connections, len(g.Targets))
		}
		gl.Mix = slices.Clone(l.Mix)
		for j := range gl.Mix {
			st := &gl.Mix[j]
			st.Targets = slices.Clone(g.StreamTargets[j])
			st.Rate /= float64(n)
			st.Connections = split(st.Connections, len(st.Targets))
		}
		out[i] = Generator{Name: g.Name, Node: g.Node, Load: gl}
	}
	return out
}

// GeneratorArgs adds to a generator's `meshbench load` command line its
// label and the common start.
func GeneratorArgs(args []string, g Generator, start time.Time) []string {
	if g.Name == "" {
		return args
	}
	return append(args, "--label", "generator="+g.Name, "--start-at", start.UTC().Format(time.RFC3339Nano))
}

// GeneratorFile names a generator's file in the cell directory: name
// itself for the only generator, else name with the generator's name
// before the extension (result-load-g1.json).
func GeneratorFile(name string, g Generator) string {
	if g.Name == "" {
		return name
	}
	ext := filepath.Ext(name)
	return name[:len(name)-len(ext)] + "-" + g.Name + ext
}

// ReadResult decodes a load generator's result file.
func ReadResult(path string) (*loadgen.Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the load result: %w", err)
	}
	var r loadgen.Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding the load result %s: %w", path, err)
	}
	return &r, nil
}

// MergeGenerators reads the generators' results (ReadResult) and interval
// logs from dir (written as GeneratorFile(resultFile) and GeneratorFile(hdrLog)),
// merges them — histograms merged, never percentiles averaged — with each
// generator's own result kept in Generators, and writes the merged
// interval log to dir/latency.hlog. One generator's result is returned as
// it is.
func MergeGenerators(dir, resultFile string, gens []Generator) (*loadgen.Result, error) {
	var parts []*loadgen.Result
	for _, g := range gens {
		r, err := ReadResult(filepath.Join(dir, GeneratorFile(resultFile, g)))
		if err != nil {
			return nil, err
		}
		if len(gens) == 1 {
			return r, nil
		}
		if err := attachLog(r, filepath.Join(dir, GeneratorFile(result.HdrLogFile, g))); err != nil {
			return nil, fmt.Errorf("generator %s: %w", g.Name, err)
		}
		parts = append(parts, r)
	}
	m, err := loadgen.Merge(parts)
	if err != nil {
		return nil, err
	}
	m.Labels = maps.Clone(parts[0].Labels)
	delete(m.Labels, "generator")
	if m.Mix, err = mergeStreams(parts); err != nil {
		return nil, err
	}
	for _, p := range parts {
		m.Generators = append(m.Generators, *p)
	}
	f, err := os.Create(filepath.Join(dir, result.HdrLogFile))
	if err != nil {
		return nil, fmt.Errorf("writing the merged interval log: %w", err)
	}
	werr := loadgen.WriteIntervalLog(f, m)
	if err := errors.Join(werr, f.Close()); err != nil {
		return nil, fmt.Errorf("writing the merged interval log: %w", err)
	}
	return m, nil
}

// mergeStreams merges the generators' results of each stream of a mix.
func mergeStreams(parts []*loadgen.Result) ([]loadgen.Result, error) {
	if len(parts[0].Mix) == 0 {
		return nil, nil
	}
	var out []loadgen.Result
	for j := range parts[0].Mix {
		var ss []*loadgen.Result
		for _, p := range parts {
			if j < len(p.Mix) {
				ss = append(ss, &p.Mix[j])
			}
		}
		m, err := loadgen.Merge(ss)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", ss[0].Stream, err)
		}
		m.Stream, m.Protocol, m.Labels = ss[0].Stream, ss[0].Protocol, maps.Clone(ss[0].Labels)
		delete(m.Labels, "generator")
		out = append(out, *m)
	}
	return out, nil
}

func attachLog(r *loadgen.Result, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading the interval log: %w", err)
	}
	defer f.Close()
	return loadgen.AttachIntervalLog(r, io.Reader(f))
}
