package reports

import (
	"github.com/meshbench/meshbench/internal/names"

	"github.com/meshbench/meshbench/reports/result"

	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/meshbench/meshbench/loadgen"
)

// ErrNotRun is wrapped by the errors of Load and FindRun for a directory
// that holds no run.
var ErrNotRun = errors.New("not a run directory")

// Run is a results directory loaded for reporting: the run's description,
// every cell with its result, and the cells grouped into variants with
// their statistics over repeats.
type Run struct {
	Dir  string
	Info result.Run
	// Cells are in run.json's order, finished or not.
	Cells []*Cell
	// Variants are in the order their first cell ran; variants whose
	// cells are not applicable are not among them.
	Variants []*Variant
	// NotApplicable has one cell of each variant that was not applicable
	// (status n/a: its proxy lacks what it needs), in run order.
	NotApplicable []*Cell
}

// Cell is one cell of the run and, when it finished, its result.
type Cell struct {
	Info result.Cell
	// Result is nil when the cell has no usable result; Problem says why
	// (the runner's error, or what failed reading the result).
	Result *result.CellResult
	// Histogram is Result.Histogram decoded.
	Histogram *hdrhistogram.Histogram
	Problem   string
}

// OK reports whether the cell has a result.
func (c *Cell) OK() bool { return c.Result != nil }

// Valid reports whether the cell has a result that is a valid
// measurement: its load generator kept its schedule (the result's Invalid
// is empty). Only valid cells enter statistics, comparisons and figures;
// an invalid cell is listed with its reason instead.
func (c *Cell) Valid() bool { return c.OK() && c.Result.Invalid == "" }

// Variant is one point of the scenario's matrix over its repeats.
type Variant struct {
	ID string
	// Labels are the cell's labels: the dimensions and the labels the
	// runner added to every result (topology, proxy, balancer, …).
	Labels map[string]string
	// Cells holds every repeat, by repeat number.
	Cells []*Cell
	Stats Stats
	// Merged is the HdrHistogram of every repeat merged; nil when no
	// repeat has a result.
	Merged *hdrhistogram.Histogram
}

// Label returns the variant's label k, or "" when it has none.
func (v *Variant) Label(k string) string { return v.Labels[k] }

// Done returns the repeats that have a valid result (Cell.Valid): the
// repeats every statistic of the variant is made of. Repeats whose result
// is invalid are left out, like repeats without a result.
func (v *Variant) Done() []*Cell {
	var out []*Cell
	for _, c := range v.Cells {
		if c.Valid() {
			out = append(out, c)
		}
	}
	return out
}

// onlyInvalid reports whether the variant has results but none of them
// is valid: the report shows "invalid" for it instead of numbers.
func (v *Variant) onlyInvalid() bool {
	for _, c := range v.Cells {
		if c.Valid() {
			return false
		}
	}
	for _, c := range v.Cells {
		if c.OK() {
			return true
		}
	}
	return false
}

// IsBaseline reports whether the variant runs without a proxy.
func (v *Variant) IsBaseline() bool { return v.Label(LabelTopology) == TopologyBaseline }

// Labels the runner puts on every cell.
const (
	LabelTopology    = "topology"
	LabelProxy       = "proxy"
	LabelBalancer    = "balancer"
	LabelProtocol    = "protocol"
	LabelDegradation = "degradation"
	LabelMTLS        = "mtls"
	LabelRate        = "rate"
)

// LabelMix is the label of a mixed load's shares (the scenario's mix
// dimension): the name of the shares the cell's streams ran at, such as
// "50-50".
const LabelMix = "mix"

// TopologyBaseline is the topology without a proxy, which other variants
// are compared with.
const TopologyBaseline = "baseline"

// Missing returns the cells without a result, in run order, except the
// cells that were not applicable.
func (r *Run) Missing() []*Cell {
	var out []*Cell
	for _, c := range r.Cells {
		if !c.OK() && c.Info.Status != result.StatusNA {
			out = append(out, c)
		}
	}
	return out
}

// Invalid returns the cells that have a result which is not a valid
// measurement (the result's Invalid says why), in run order. They are
// neither missing nor part of any statistic.
func (r *Run) Invalid() []*Cell {
	var out []*Cell
	for _, c := range r.Cells {
		if c.OK() && !c.Valid() {
			out = append(out, c)
		}
	}
	return out
}

// Variant returns the variant with the given ID, or nil.
func (r *Run) Variant(id string) *Variant {
	for _, v := range r.Variants {
		if v.ID == id {
			return v
		}
	}
	return nil
}

// Load reads the run in dir: run.json and the result.json of every cell
// whose status is done. A cell that did not finish, or whose result cannot
// be read, stays in Run.Cells with its Problem; it is not an error.
func Load(dir string) (*Run, error) {
	b, err := os.ReadFile(filepath.Join(dir, result.RunFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("loading run %s: no %s: %w", dir, result.RunFile, ErrNotRun)
	}
	if err != nil {
		return nil, fmt.Errorf("loading run %s: %w", dir, err)
	}
	run := &Run{Dir: dir}
	if err := json.Unmarshal(b, &run.Info); err != nil {
		return nil, fmt.Errorf("loading run %s: parsing %s: %w", dir, result.RunFile, err)
	}
	seen := map[string]bool{}
	for _, ci := range run.Info.Cells {
		c := &Cell{Info: ci}
		switch {
		case !names.Safe(ci.ID):
			c.Problem = fmt.Sprintf("cell id %q is not a plain directory name", ci.ID)
		case seen[ci.ID]:
			c.Problem = "listed twice in " + result.RunFile
		case ci.Status != result.StatusDone:
			c.Problem = ci.Error
			if c.Problem == "" {
				c.Problem = notRun(ci.Status)
			}
		default:
			if err := c.load(filepath.Join(dir, ci.ID)); err != nil {
				c.Problem = err.Error()
			}
		}
		seen[ci.ID] = true
		run.Cells = append(run.Cells, c)
	}
	if err := run.group(); err != nil {
		return nil, fmt.Errorf("loading run %s: %w", dir, err)
	}
	return run, nil
}

func (c *Cell) load(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, result.ResultFile))
	if err != nil {
		return fmt.Errorf("reading result: %w", err)
	}
	var res result.CellResult
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("parsing %s: %w", filepath.Join(dir, result.ResultFile), err)
	}
	if res.Histogram == "" {
		return fmt.Errorf("%s has no histogram", filepath.Join(dir, result.ResultFile))
	}
	h, err := loadgen.DecodeHistogram(res.Histogram)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, result.ResultFile), err)
	}
	c.Result, c.Histogram = &res, h
	return nil
}

// notRun explains a status other than done that came without an error.
func notRun(status string) string {
	switch status {
	case result.StatusPending, "":
		return "not run"
	case result.StatusRunning:
		return "interrupted while running"
	}
	return "status " + status
}

// group builds the variants from the cells and computes their statistics.
func (r *Run) group() error {
	byID := map[string]*Variant{}
	na := map[string]bool{}
	for _, c := range r.Cells {
		id := c.Info.Variant
		if id == "" {
			id = c.Info.ID
		}
		if c.Info.Status == result.StatusNA {
			if !na[id] {
				na[id] = true
				r.NotApplicable = append(r.NotApplicable, c)
			}
			continue
		}
		v := byID[id]
		if v == nil {
			v = &Variant{ID: id, Labels: map[string]string{}}
			byID[id] = v
			r.Variants = append(r.Variants, v)
		}
		if c.OK() {
			for k, val := range c.Result.Labels {
				if _, ok := v.Labels[k]; !ok {
					v.Labels[k] = val
				}
			}
		}
		for k, val := range c.Info.Labels {
			v.Labels[k] = val
		}
		v.Cells = append(v.Cells, c)
	}
	for _, v := range r.Variants {
		slices.SortStableFunc(v.Cells, func(a, b *Cell) int { return a.Info.Repeat - b.Info.Repeat })
		if err := v.summarize(); err != nil {
			return fmt.Errorf("variant %s: %w", v.ID, err)
		}
	}
	return nil
}

// FindRun resolves dir to a run directory: dir itself when it holds
// run.json, else the newest run among its subdirectories (a scenario's
// directory, DIR/<scenario>/<timestamp>/). newest reports that a
// subdirectory was picked.
func FindRun(dir string) (run string, newest bool, err error) {
	st, err := os.Stat(dir)
	if err != nil {
		return "", false, fmt.Errorf("finding run in %s: %w", dir, err)
	}
	if !st.IsDir() {
		return "", false, fmt.Errorf("finding run in %s: not a directory", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, result.RunFile)); err == nil {
		return dir, false, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", false, fmt.Errorf("finding run in %s: %w", dir, err)
	}
	var best string
	var bestInfo result.Run
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		sub := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(filepath.Join(sub, result.RunFile))
		if err != nil {
			continue
		}
		var ri result.Run
		if json.Unmarshal(b, &ri) != nil {
			continue
		}
		// Newest by start time; the directory name (a timestamp) breaks ties.
		if best == "" || ri.Started.After(bestInfo.Started) ||
			(ri.Started.Equal(bestInfo.Started) && e.Name() > filepath.Base(best)) {
			best, bestInfo = sub, ri
		}
	}
	if best == "" {
		return "", false, fmt.Errorf("%s has no %s, and none of its subdirectories is a run: %w", dir, result.RunFile, ErrNotRun)
	}
	return best, true, nil
}
