package gatereport

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/meshbench/meshbench/internal/atomicfile"
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

// encodeJSON encodes r as indented JSON. The gate's figures are finite
// (a row without pairs has zeros), so encoding/json, which refuses NaN,
// can encode every result.
func encodeJSON(r *gate.Result) ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", FileJSON, err)
	}
	return append(b, '\n'), nil
}

// writeFile writes data so that a reader never sees half a file.
func writeFile(path string, data []byte) error { return atomicfile.Write(path, data) }
