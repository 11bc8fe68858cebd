package gatereport

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/meshbench/meshbench/reports/gate"
)

// Files WriteDir writes.
const (
	FileJSON     = "gate.json"
	FileMarkdown = "gate.md"
	FilePNG      = "gate-ratios.png"
	FileSVG      = "gate-ratios.svg"
	FileJUnit    = "gate.junit.xml"
)

// WriteDir writes gate.json (r, indented), gate-ratios.png and
// gate-ratios.svg (Plot), gate.md (Markdown, showing gate-ratios.png) and
// gate.junit.xml (JUnit) into dir, creating it if needed, and returns the
// paths written. Each file is written to a temporary file beside it and
// renamed into place, so a reader never sees half of one. When no row has
// a paired value there is nothing to plot: the images are left out (and
// gate.md does not refer to them). gate.json writes a figure that could
// not be computed (NaN: a row without pairs) as null, which JSON can hold
// and NaN it cannot.
func WriteDir(dir string, r *gate.Result) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the gate's report directory: %w", err)
	}
	var written []string
	write := func(name string, data []byte) error {
		path := filepath.Join(dir, name)
		if err := writeFile(path, data); err != nil {
			return err
		}
		written = append(written, path)
		return nil
	}
	js, err := encodeJSON(r)
	if err != nil {
		return written, err
	}
	if err := write(FileJSON, js); err != nil {
		return written, err
	}
	plotFile := FilePNG
	png, svg, err := Plot(r)
	switch {
	case errNoData(err):
		plotFile = ""
	case err != nil:
		return written, fmt.Errorf("writing %s: %w", FilePNG, err)
	default:
		if err := write(FilePNG, png); err != nil {
			return written, err
		}
		if err := write(FileSVG, svg); err != nil {
			return written, err
		}
	}
	var md bytes.Buffer
	if err := Markdown(&md, r, plotFile); err != nil {
		return written, err
	}
	if err := write(FileMarkdown, md.Bytes()); err != nil {
		return written, err
	}
	var ju bytes.Buffer
	if err := JUnit(&ju, r); err != nil {
		return written, err
	}
	if err := write(FileJUnit, ju.Bytes()); err != nil {
		return written, err
	}
	return written, nil
}

// nanSentinel stands in for a non-finite figure while r is encoded: no
// measured figure is ever the most negative float64.
const nanSentinel = -math.MaxFloat64

// encodeJSON encodes r as indented JSON, non-finite figures as null
// (encoding/json refuses NaN).
func encodeJSON(r *gate.Result) ([]byte, error) {
	c := *r
	c.Confidence, c.MinEffect = orSentinel(c.Confidence), orSentinel(c.MinEffect)
	c.Rows, c.Detail = sentinelRows(r.Rows), sentinelRows(r.Detail)
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", FileJSON, err)
	}
	s, err := json.Marshal(nanSentinel)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", FileJSON, err)
	}
	return append(bytes.ReplaceAll(b, s, []byte("null")), '\n'), nil
}

func orSentinel(v float64) float64 {
	if finite(v) {
		return v
	}
	return nanSentinel
}

// sentinelRows copies rows with their non-finite figures replaced by
// nanSentinel.
func sentinelRows(rows []gate.Row) []gate.Row {
	if rows == nil {
		return nil
	}
	out := slices.Clone(rows)
	for i := range out {
		row := &out[i]
		row.Threshold, row.BaseMedian, row.CandidateMedian = orSentinel(row.Threshold), orSentinel(row.BaseMedian), orSentinel(row.CandidateMedian)
		e := &row.Estimate
		e.Median, e.Low, e.High = orSentinel(e.Median), orSentinel(e.Low), orSentinel(e.High)
		row.Pairs = slices.Clone(row.Pairs)
		for k := range row.Pairs {
			p := &row.Pairs[k]
			p.Base, p.Candidate, p.Value = orSentinel(p.Base), orSentinel(p.Candidate), orSentinel(p.Value)
		}
	}
	return out
}

// writeFile writes data to a temporary file beside path and renames it
// into place.
func writeFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
