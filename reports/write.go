package reports

import (
	"github.com/meshbench/meshbench/internal/atomicfile"
	"github.com/meshbench/meshbench/reports/result"

	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Files of a report directory.
const (
	HTMLFile     = "report.html"
	MarkdownFile = "report.md"
	PlotsDir     = "plots"
	ExportDir    = "export"
)

// Output lists the files Write wrote.
type Output struct {
	Dir      string
	HTML     string
	Markdown string
	Plots    []string // PNG and SVG of every figure
	Exports  []string // <cell>.fortio.json and <cell>.smp.json of every cell with a result
}

// Write writes the report of run into out: report.html, report.md,
// plots/<name>.png and .svg, and export/<cell>.fortio.json and
// .smp.json. Plots and exports left from an earlier report in out are
// removed first, so the directory describes this run only.
func Write(run *Run, out string) (*Output, error) {
	o := &Output{Dir: out, HTML: filepath.Join(out, HTMLFile), Markdown: filepath.Join(out, MarkdownFile)}
	plotDir, exportDir := filepath.Join(out, PlotsDir), filepath.Join(out, ExportDir)
	for _, d := range []string{plotDir, exportDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("writing report: %w", err)
		}
	}
	if err := removeMatching(plotDir, ".png", ".svg"); err != nil {
		return nil, err
	}
	if err := removeMatching(exportDir, ".fortio.json", ".smp.json"); err != nil {
		return nil, err
	}

	figs, err := Figures(run)
	if err != nil {
		return nil, fmt.Errorf("writing report: %w", err)
	}
	for _, f := range figs {
		for _, x := range []struct {
			ext  string
			data []byte
		}{{".png", f.PNG}, {".svg", f.SVG}} {
			p := filepath.Join(plotDir, f.Name+x.ext)
			if err := writeFile(p, x.data); err != nil {
				return nil, err
			}
			o.Plots = append(o.Plots, p)
		}
	}

	for _, c := range run.Cells {
		if !c.OK() {
			continue
		}
		fo, err := Fortio(c)
		if err != nil {
			return nil, err
		}
		p := filepath.Join(exportDir, c.Info.ID+".fortio.json")
		if err := writeJSON(p, fo); err != nil {
			return nil, err
		}
		o.Exports = append(o.Exports, p)
		details := ""
		if abs, err := filepath.Abs(filepath.Join(run.Dir, c.Info.ID, result.ResultFile)); err == nil {
			if absOut, err := filepath.Abs(exportDir); err == nil {
				if rel, err := filepath.Rel(absOut, abs); err == nil {
					details = rel
				}
			}
		}
		smp, err := SMP(run, c, details)
		if err != nil {
			return nil, err
		}
		p = filepath.Join(exportDir, c.Info.ID+".smp.json")
		if err := writeJSON(p, smp); err != nil {
			return nil, err
		}
		o.Exports = append(o.Exports, p)
	}

	var md bytes.Buffer
	if err := WriteMarkdown(&md, run, figs); err != nil {
		return nil, err
	}
	if err := writeFile(o.Markdown, md.Bytes()); err != nil {
		return nil, err
	}
	var html bytes.Buffer
	if err := WriteHTML(&html, run, figs); err != nil {
		return nil, err
	}
	if err := writeFile(o.HTML, html.Bytes()); err != nil {
		return nil, err
	}
	return o, nil
}

// removeMatching removes the files in dir whose names end in one of
// suffixes.
func removeMatching(dir string, suffixes ...string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("cleaning %s: %w", dir, err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		for _, s := range suffixes {
			if strings.HasSuffix(e.Name(), s) {
				if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
					return fmt.Errorf("cleaning %s: %w", dir, err)
				}
				break
			}
		}
	}
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return writeFile(path, append(b, '\n'))
}

// writeFile writes data so that a reader never sees half a file.
func writeFile(path string, data []byte) error { return atomicfile.Write(path, data) }
