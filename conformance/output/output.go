package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/internal/junit"
)

// Cell is a result's short form in the matrix.
func Cell(s conformance.Status) string {
	switch s {
	case conformance.StatusPass:
		return "pass"
	case conformance.StatusFail:
		return "FAIL"
	case conformance.StatusUnsupported:
		return "n/a"
	case conformance.StatusSkipped:
		return "skip"
	case conformance.StatusConfigOnly:
		return "config"
	}
	return "-"
}

// Matrix writes the checks × proxies table, the counts, and every
// failure with its reason.
func Matrix(w io.Writer, r *conformance.Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "check")
	for _, p := range r.Proxies {
		fmt.Fprintf(tw, "\t%s", p.Name)
	}
	fmt.Fprintln(tw)
	for _, c := range r.Checks {
		fmt.Fprint(tw, c.ID)
		for _, p := range r.Proxies {
			res, ok := p.Result(c.ID)
			cell := "-"
			if ok {
				cell = Cell(res.Status)
			}
			fmt.Fprintf(tw, "\t%s", cell)
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprint(tw, "pass/fail/n-a/skip")
	for _, p := range r.Proxies {
		c := p.Counts
		s := fmt.Sprintf("%d/%d/%d/%d", c.Pass, c.Fail, c.Unsupported, c.Skipped)
		if c.ConfigOnly > 0 {
			s += fmt.Sprintf(" +%d config", c.ConfigOnly)
		}
		fmt.Fprintf(tw, "\t%s", s)
	}
	fmt.Fprintln(tw)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, p := range r.Proxies {
		fmt.Fprintf(w, "%s: %s\n", p.Name, p.Version)
	}
	var fails []string
	for _, p := range r.Proxies {
		for _, res := range p.Results {
			if res.Status == conformance.StatusFail {
				fails = append(fails, fmt.Sprintf("FAIL %s on %s: %s", res.ID, p.Name, oneLine(res.Reason)))
			}
		}
	}
	if len(fails) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, strings.Join(fails, "\n"))
	}
	return nil
}

// oneLine shortens a reason to its first line, at most 300 bytes.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// WriteDir writes conformance.json, report.md, report.html and
// junit-<proxy>.xml into dir, and returns the paths written.
func WriteDir(dir string, r *conformance.Report) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	type file struct {
		name   string
		encode func() ([]byte, error)
	}
	files := []file{
		{"conformance.json", func() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }},
		{"report.md", func() ([]byte, error) { return Markdown(r), nil }},
		{"report.html", func() ([]byte, error) { return HTML(r) }},
	}
	for _, p := range r.Proxies {
		files = append(files, file{"junit-" + p.Name + ".xml", func() ([]byte, error) { return JUnit(r, p) }})
	}
	var written []string
	for _, f := range files {
		b, err := f.encode()
		if err != nil {
			return written, fmt.Errorf("writing %s: %w", f.name, err)
		}
		path := filepath.Join(dir, f.name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return written, fmt.Errorf("writing %s: %w", f.name, err)
		}
		written = append(written, path)
	}
	return written, nil
}

// Markdown is report.md: the versions, the matrix, and per check what it
// asserts and each proxy's reason and figures.
func Markdown(r *conformance.Report) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Conformance\n\nRun %s, %.0f s.", r.Started.Format("2006-01-02 15:04 UTC"), r.DurationS)
	if r.Incomplete {
		b.WriteString(" **Incomplete: the run was interrupted.**")
	}
	b.WriteString("\n\n| proxy | version | pass | fail | n/a | skipped | config-only |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, p := range r.Proxies {
		c := p.Counts
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d |\n", p.Name, mdEscape(p.Version), c.Pass, c.Fail, c.Unsupported, c.Skipped, c.ConfigOnly)
	}
	b.WriteString("\npass: the check passed; FAIL: it failed; n/a: the proxy lacks what the check needs (the reason is the adapter's); skip: a tool the harness needs is missing; config: the adapter rendered the check's configuration, the proxy was not run.\n\n")
	b.WriteString("| check |")
	for _, p := range r.Proxies {
		fmt.Fprintf(&b, " %s |", p.Name)
	}
	b.WriteString("\n| --- |")
	for range r.Proxies {
		b.WriteString(" --- |")
	}
	b.WriteString("\n")
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "| [%s](#%s) |", c.ID, anchor(c.ID))
		for _, p := range r.Proxies {
			res, _ := p.Result(c.ID)
			fmt.Fprintf(&b, " %s |", Cell(res.Status))
		}
		b.WriteString("\n")
	}
	profile := ""
	for _, c := range r.Checks {
		if c.Profile != profile {
			profile = c.Profile
			fmt.Fprintf(&b, "\n## %s\n", profile)
		}
		fmt.Fprintf(&b, "\n### %s\n\n<a id=\"%s\"></a>%s — %s\n\n", c.ID, anchor(c.ID), mdEscape(c.Title), mdEscape(c.Asserts))
		for _, p := range r.Proxies {
			res, ok := p.Result(c.ID)
			if !ok {
				continue
			}
			fmt.Fprintf(&b, "- **%s**: %s", p.Name, Cell(res.Status))
			if res.Reason != "" {
				fmt.Fprintf(&b, " — %s", mdEscape(oneLine(res.Reason)))
			}
			if f := figures(res.Figures); f != "" {
				fmt.Fprintf(&b, " (%s)", f)
			}
			fmt.Fprintf(&b, " [%.1f s]\n", res.DurationMs/1e3)
		}
	}
	return b.Bytes()
}

func figures(fs []conformance.Figure) string {
	var parts []string
	for _, f := range fs {
		parts = append(parts, strings.TrimSpace(fmt.Sprintf("%s %s %s", f.Name, formatValue(f.Value), f.Unit)))
	}
	return strings.Join(parts, ", ")
}

func formatValue(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.4g", v)
}

func anchor(id string) string { return strings.NewReplacer("/", "-").Replace(id) }

func mdEscape(s string) string { return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s) }

// HTML is report.html: the same content as report.md, as one page.
func HTML(r *conformance.Report) ([]byte, error) {
	type cell struct{ Class, Text, Title string }
	type row struct {
		ID, Anchor, Title string
		Cells             []cell
	}
	type detail struct {
		Proxy, Status, Class, Reason, Figures string
		Seconds                               float64
	}
	type check struct {
		conformance.CheckInfo
		Anchor  string
		Details []detail
	}
	data := struct {
		R      *conformance.Report
		Rows   []row
		Checks []check
	}{R: r}
	for _, c := range r.Checks {
		rw := row{ID: c.ID, Anchor: anchor(c.ID), Title: c.Title}
		ck := check{CheckInfo: c, Anchor: anchor(c.ID)}
		for _, p := range r.Proxies {
			res, _ := p.Result(c.ID)
			rw.Cells = append(rw.Cells, cell{Class: string(res.Status), Text: Cell(res.Status), Title: oneLine(res.Reason)})
			ck.Details = append(ck.Details, detail{Proxy: p.Name, Status: Cell(res.Status), Class: string(res.Status), Reason: oneLine(res.Reason), Figures: figures(res.Figures), Seconds: res.DurationMs / 1e3})
		}
		data.Rows = append(data.Rows, rw)
		data.Checks = append(data.Checks, ck)
	}
	var b bytes.Buffer
	if err := htmlTemplate.Execute(&b, data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

var htmlTemplate = template.Must(template.New("conformance").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>meshbench conformance</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:80em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
td.pass{background:#dfd}td.fail{background:#fbb;font-weight:bold}td.unsupported{background:#eee;color:#555}
td.skipped{background:#ffd}td.config-only{background:#def}
.reason{color:#444}
</style></head><body>
<h1>Conformance</h1>
<p>Run {{.R.Started.Format "2006-01-02 15:04 UTC"}}, {{printf "%.0f" .R.DurationS}} s.{{if .R.Incomplete}} <strong>Incomplete: the run was interrupted.</strong>{{end}}</p>
<table><tr><th>proxy</th><th>version</th><th>pass</th><th>fail</th><th>n/a</th><th>skipped</th><th>config-only</th></tr>
{{range .R.Proxies}}<tr><td>{{.Name}}</td><td>{{.Version}}</td><td>{{.Counts.Pass}}</td><td>{{.Counts.Fail}}</td><td>{{.Counts.Unsupported}}</td><td>{{.Counts.Skipped}}</td><td>{{.Counts.ConfigOnly}}</td></tr>
{{end}}</table>
<p>pass: the check passed; FAIL: it failed; n/a: the proxy lacks what the check needs (the reason is the adapter's); skip: a tool the harness needs is missing; config: the adapter rendered the check's configuration, the proxy was not run.</p>
<table><tr><th>check</th>{{range .R.Proxies}}<th>{{.Name}}</th>{{end}}</tr>
{{range .Rows}}<tr><td><a href="#{{.Anchor}}" title="{{.Title}}">{{.ID}}</a></td>{{range .Cells}}<td class="{{.Class}}" title="{{.Title}}">{{.Text}}</td>{{end}}</tr>
{{end}}</table>
{{range .Checks}}<h3 id="{{.Anchor}}">{{.ID}}</h3><p><strong>{{.Title}}</strong> — {{.Asserts}}</p>
<table>{{range .Details}}<tr><td>{{.Proxy}}</td><td class="{{.Class}}">{{.Status}}</td><td class="reason">{{.Reason}}</td><td>{{.Figures}}</td><td>{{printf "%.1f" .Seconds}} s</td></tr>{{end}}</table>
{{end}}</body></html>
`))

// JUnit is one proxy's results as a JUnit XML report: a test suite per
// profile, a test case per check; fail is a failure, n/a, skipped and
// config-only are skipped with their reason.
func JUnit(r *conformance.Report, p conformance.ProxyReport) ([]byte, error) {
	out := junit.Suites{Name: "meshbench conformance: " + p.Name + " " + p.Version}
	index := map[string]int{}
	for _, c := range r.Checks {
		res, ok := p.Result(c.ID)
		if !ok {
			continue
		}
		i, ok := index[c.Profile]
		if !ok {
			i = len(out.Suites)
			index[c.Profile] = i
			out.Suites = append(out.Suites, junit.Suite{Name: p.Name + "/" + c.Profile})
		}
		tc := junit.Case{Name: c.ID, Classname: p.Name + "." + c.Profile, Time: fmt.Sprintf("%.3f", res.DurationMs/1e3), Output: figures(res.Figures)}
		switch res.Status {
		case conformance.StatusPass:
		case conformance.StatusFail:
			tc.Failure = &junit.Failure{Message: oneLine(res.Reason), Text: res.Reason}
		default:
			tc.Skipped = &junit.Skipped{Message: string(res.Status) + ": " + oneLine(res.Reason)}
		}
		out.Suites[i].Cases = append(out.Suites[i].Cases, tc)
	}
	return out.Marshal()
}
