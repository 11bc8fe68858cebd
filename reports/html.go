package reports

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
)

// HowToRead explains a kind of figure in a short paragraph.
func HowToRead(kind string) string {
	switch kind {
	case FigSpectrum:
		return "Each line is one variant's latency distribution, its repeats' histograms merged. " +
			"Left to right the percentile rises on a logarithmic scale of 1/(1−p): 90%, 99%, 99.9% are equally far apart, so the tail gets as much room as the median. " +
			"A line that stays low and flat is a fast, predictable variant; the height difference to the baseline at a percentile is the latency the proxy adds there; a late upturn is a tail problem the median hides."
	case FigPercentiles:
		return "Per variant, the median over repeats of p50, p99 and p99.9 (points, log scale) with a bar from the smallest to the largest repeat. " +
			"Bars that overlap between two variants mean the run cannot tell them apart at that percentile; wide bars mean the repeats disagreed and more repeats (or a quieter machine) are needed."
	case FigRate:
		return "Latency as the requested rate rises, one colour per variant: p99 solid, p50 dashed, with min–max bars over repeats. " +
			"Where a line bends upwards the proxy (or the backend) starts to queue: that knee, not the highest rate reached, is the usable capacity."
	case FigSearch:
		return "The probes of each variant's rate search: latency against the rate the generator achieved, one colour per variant, p99 solid and p50 dashed, on a logarithmic latency axis; the repeats' probes at the same requested rate are one point, the median with min–max bars. " +
			"The dotted horizontal line is the objective's bound; the search's answer is the last rate before the line is crossed. " +
			"A line that rises slowly and then shoots up is a proxy that queues past its capacity; one that crosses the bound early is where the proxy's own latency, not capacity, is the limit. Probes whose run was invalid are left out."
	case FigStreams:
		return "Each stream of a mixed load on its own (one colour per stream), per variant: p50 in the top panel, p99 below, the median over repeats with min–max bars, log scale. " +
			"The streams ran at the same time through the same proxies, so a gap between them within a variant is what the protocol costs there; compare one colour across variants to see what each proxy adds to that stream."
	case FigCPU:
		return "CPU time the proxies spent per request: the bar is the whole topology (every proxy summed), the points are the single instances, with min–max over repeats. " +
			"The number in brackets counts the proxy instances, so a topology with many cheap sidecars and one with few busy node proxies can be compared on what they cost together."
	case FigRSS:
		return "Peak resident memory of the proxies: the bar sums the peaks of every instance of the topology, the points are single instances, with min–max over repeats. " +
			"Memory is paid per instance, so the instance count in brackets matters as much as each instance's size."
	case FigEndpoints:
		return "How the responses were spread over the backend pods, per variant, repeats summed. " +
			"Equal layers mean an even spread; under a degraded pod a balancer that notices slowness gives that pod a thinner layer."
	case FigTimeseries:
		return "Second by second, one line per balancer: p99 (top) and completed requests (bottom) of one repeat; the dashed vertical line marks the event (a pod made slow or failing) in the middle of the run. " +
			"Watch how high p99 jumps after the event and how quickly it comes back down: that is how fast the balancer reacts."
	}
	return ""
}

// htmlFigure is a figure prepared for the template.
type htmlFigure struct {
	Figure
	SVG  template.HTML
	Read string // how to read it, on the first figure of its kind
}

type htmlData struct {
	Run        *Run
	Facts      []Fact
	Tables     []Table
	Missing    []*Cell
	Figures    []htmlFigure
	Incomplete string
}

// inlineSVG turns a standalone SVG document into an element for an HTML
// page: without the XML prolog and comments before <svg>, and without the
// xlink namespace, which gonum's plots never use.
func inlineSVG(b []byte) (template.HTML, error) {
	i := bytes.Index(b, []byte("<svg"))
	if i < 0 {
		return "", fmt.Errorf("inlining SVG: no <svg> element")
	}
	svg := b[i:]
	if j := bytes.Index(svg, []byte(`xmlns:xlink="`)); j >= 0 {
		if k := bytes.IndexByte(svg[j+len(`xmlns:xlink="`):], '"'); k >= 0 {
			end := j + len(`xmlns:xlink="`) + k + 1
			start := j
			for start > 0 && (svg[start-1] == ' ' || svg[start-1] == '\t' || svg[start-1] == '\n') {
				start--
			}
			svg = append(append([]byte{}, svg[:start]...), svg[end:]...)
		}
	}
	// gonum's SVG writer escapes every text it draws.
	return template.HTML(svg), nil
}

// WriteHTML writes report.html: one self-contained page (inline CSS and
// SVG, no scripts, nothing fetched) with the run's facts, the tables, the
// plots and how to read them.
func WriteHTML(w io.Writer, run *Run, figs []Figure) error {
	d := htmlData{Run: run, Facts: Facts(run), Tables: Tables(run), Missing: run.Missing()}
	if run.Info.Incomplete {
		d.Incomplete = run.Info.Reason
		if d.Incomplete == "" {
			d.Incomplete = "not every cell ran"
		}
	}
	seen := map[string]bool{}
	for _, f := range figs {
		svg, err := inlineSVG(f.SVG)
		if err != nil {
			return fmt.Errorf("writing HTML report: %s: %w", f.Name, err)
		}
		hf := htmlFigure{Figure: f, SVG: svg}
		if !seen[f.Kind] {
			hf.Read = HowToRead(f.Kind)
			seen[f.Kind] = true
		}
		d.Figures = append(d.Figures, hf)
	}
	t, err := template.New("report").Parse(htmlTemplate)
	if err != nil {
		return fmt.Errorf("writing HTML report: parsing template: %w", err)
	}
	if err := t.Execute(w, d); err != nil {
		return fmt.Errorf("writing HTML report: %w", err)
	}
	return nil
}

const htmlTemplate = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>meshbench report: {{.Run.Info.Scenario}}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
h3 { font-size: 1.05em; margin: 1.5em 0 .4em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .3em .6em; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; }
td:first-child, th:first-child { text-align: left; }
table.facts td { text-align: left; white-space: normal; }
.note { color: #555; font-size: .85em; margin: .2em 0; }
.warn { background: #fff4e5; border-left: 4px solid #f28e2b; padding: .6em 1em; margin: 1em 0; }
.read { color: #333; max-width: 60em; }
figure { margin: 1em 0 2em; }
figure svg { max-width: 100%; height: auto; display: block; }
figure svg text { font-family: "Liberation Sans", Arial, Helvetica, sans-serif !important; }
nav a { margin-right: 1em; }
.scroll { overflow-x: auto; }
</style>
</head>
<body>
<h1>meshbench report: {{.Run.Info.Scenario}}</h1>
{{with .Run.Info.Description}}<p>{{.}}</p>{{end}}
<nav><a href="#run">Run</a>{{range .Tables}}<a href="#{{.ID}}">{{.Title}}</a>{{end}}{{if .Figures}}<a href="#plots">Plots</a>{{end}}<a href="#reading">Reading the numbers</a></nav>
{{with .Incomplete}}<div class="warn"><strong>Incomplete run:</strong> {{.}}. Tables and plots cover the cells that finished; the missing ones are listed below.</div>{{end}}
{{if .Run.Info.Quick}}<div class="warn"><strong>Quick run:</strong> shortened durations; a smoke test, not a measurement.</div>{{end}}

<h2 id="run">Run</h2>
<table class="facts">
{{range .Facts}}<tr><td>{{.Name}}</td><td>{{.Value}}</td></tr>
{{end}}</table>
{{if .Missing}}<h3>Missing cells</h3>
<table>
<tr><th>cell</th><th>status</th><th>why</th></tr>
{{range .Missing}}<tr><td>{{.Info.ID}}</td><td>{{.Info.Status}}</td><td style="text-align:left;white-space:normal">{{.Problem}}</td></tr>
{{end}}</table>{{end}}

{{range .Tables}}<h2 id="{{.ID}}">{{.Title}}</h2>
<div class="scroll"><table>
<tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table></div>
{{range .Notes}}<p class="note">{{.}}</p>
{{end}}
{{end}}
{{if .Figures}}<h2 id="plots">Plots</h2>
{{range .Figures}}{{with .Read}}<p class="read">{{.}}</p>{{end}}
<figure id="plot-{{.Name}}">
<h3>{{.Title}}</h3>
{{.SVG}}
<figcaption class="note">plots/{{.Name}}.png, plots/{{.Name}}.svg</figcaption>
</figure>
{{end}}{{end}}

<h2 id="reading">Reading the numbers</h2>
<p class="read">Every latency is measured from the time a request was meant to be sent (open loop), so a stall shows up in the percentiles instead of lowering the rate. Each variant ran {{.Run.Info.Repeats}} time(s); a table cell gives the <em>median over the repeats</em> and, in brackets, the smallest and largest repeat. Percentiles are never averaged: the plots of distributions merge the repeats' HdrHistograms.</p>
<p class="read">Comparisons are made only between cells of this run, which ran interleaved on the same machine: the added latency of a proxy is computed per repeat (its repeat r minus the baseline's repeat r) before taking the median. Absolute times from different runs, or different machines, are not comparable.</p>
</body>
</html>
`
