package reports

import (
	"fmt"
	"io"
	"strings"
)

// WriteMarkdown writes report.md: the run's key facts and the tables in
// GitHub-flavoured Markdown, short enough for a pull-request comment.
// Plots are linked, relative to the report (plots/<name>.png), not
// inlined.
func WriteMarkdown(w io.Writer, run *Run, figs []Figure) error {
	var b strings.Builder
	ri := run.Info
	fmt.Fprintf(&b, "# meshbench report: %s\n\n", mdText(ri.Scenario))
	if ri.Description != "" {
		fmt.Fprintf(&b, "%s\n\n", mdText(ri.Description))
	}
	var facts []string
	for _, f := range Facts(run) {
		switch f.Name {
		case "Platform", "Started", "Repeats", "Cells", "env cpu_model", "env cores", "env commit":
			facts = append(facts, fmt.Sprintf("%s: %s", strings.TrimPrefix(f.Name, "env "), mdText(f.Value)))
		case "cluster kubernetes_version", "cluster node_image", "cluster cluster":
			// A Kubernetes run: what it ran on.
			facts = append(facts, fmt.Sprintf("%s: %s", strings.TrimPrefix(f.Name, "cluster "), mdText(f.Value)))
		}
	}
	b.WriteString(strings.Join(facts, " · ") + "\n\n")
	if ri.Incomplete {
		reason := ri.Reason
		if reason == "" {
			reason = "not every cell ran"
		}
		fmt.Fprintf(&b, "> **Incomplete run**: %s. The figures below cover the cells that finished.\n\n", mdText(reason))
	}
	if ri.Quick {
		b.WriteString("> **Quick run**: shortened durations; a smoke test, not a measurement.\n\n")
	}
	for _, t := range Tables(run) {
		fmt.Fprintf(&b, "## %s\n\n", t.Title)
		writeMarkdownTable(&b, t)
	}
	if miss := run.Missing(); len(miss) > 0 {
		b.WriteString("## Missing cells\n\n")
		for _, c := range miss {
			fmt.Fprintf(&b, "- `%s` (%s): %s\n", c.Info.ID, mdText(c.Info.Status), mdText(c.Problem))
		}
		b.WriteString("\n")
	}
	if len(figs) > 0 {
		b.WriteString("## Plots\n\n")
		for _, f := range figs {
			fmt.Fprintf(&b, "- [%s](plots/%s.png)\n", mdText(f.Title), f.Name)
		}
		b.WriteString("\n")
	}
	b.WriteString("Medians over repeats with min–max; every comparison is between cells of this run. The full report with plots is report.html.\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("writing markdown report: %w", err)
	}
	return nil
}

func writeMarkdownTable(b *strings.Builder, t Table) {
	row := func(cells []string) {
		b.WriteString("|")
		for _, c := range cells {
			b.WriteString(" " + mdCell(c) + " |")
		}
		b.WriteString("\n")
	}
	row(t.Header)
	b.WriteString("|")
	for i := range t.Header {
		if i == 0 {
			b.WriteString(" --- |")
		} else {
			b.WriteString(" ---: |")
		}
	}
	b.WriteString("\n")
	for _, r := range t.Rows {
		row(r)
	}
	b.WriteString("\n")
	for _, n := range t.Notes {
		b.WriteString("<sub>" + mdText(n) + "</sub>\n")
	}
	if len(t.Notes) > 0 {
		b.WriteString("\n")
	}
}

// mdCell escapes a table cell's text.
func mdCell(s string) string {
	return strings.ReplaceAll(mdText(s), "|", `\|`)
}

// mdText keeps free text from turning into Markdown or HTML.
func mdText(s string) string {
	r := strings.NewReplacer("\n", " ", "<", "&lt;", ">", "&gt;", "*", `\*`, "`", "'", "[", `\[`, "]", `\]`)
	return r.Replace(s)
}
