package gatereport

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/meshbench/meshbench/reports/gate"
)

// badge is the heading's word for a verdict.
func badge(v string) string {
	switch v {
	case gate.OK:
		return "✅ ok"
	case gate.Improvement:
		return "🚀 improvement"
	case gate.Inconclusive:
		return "⚠️ inconclusive"
	case gate.Regression:
		return "❌ regression"
	}
	return cmpOr(v, "unknown")
}

// Markdown writes gate.md, a GitHub-flavoured Markdown pull-request
// comment: the verdict as a heading, what was compared, the verdict
// table, the per-variant detail (folded), the candidate's failed cells
// and the pairs left out, the plot plotFile (left out when plotFile is
// "") and how to read it all.
func Markdown(w io.Writer, r *gate.Result, plotFile string) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "### meshbench gate: %s\n\n", badge(r.Verdict))
	b.WriteString(comparedSentence(r))
	b.WriteString("\n\n")
	table(&b, r, r.Rows)
	if len(r.Detail) > 0 {
		fmt.Fprintf(&b, "\n<details>\n<summary>Per variant (%d row%s: they inform, the pooled rows above decide)</summary>\n\n", len(r.Detail), plural(len(r.Detail)))
		table(&b, r, r.Detail)
		b.WriteString("\n</details>\n")
	}
	var reasons []string
	for _, row := range r.Rows {
		if row.Verdict == gate.Regression || row.Verdict == gate.Inconclusive {
			reasons = append(reasons, fmt.Sprintf("- **%s**: %s", mdEscape(rowName(row)), mdEscape(row.Reason)))
		}
	}
	if len(reasons) > 0 {
		fmt.Fprintf(&b, "\n%s\n", strings.Join(reasons, "\n"))
	}
	if len(r.Failures) > 0 {
		b.WriteString("\n**Candidate failures** (each is a regression):\n\n")
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "- %s\n", mdEscape(f))
		}
	}
	if len(r.Refused) > 0 {
		b.WriteString("\n**Refused: invalid cells** (the load generator could not keep its schedule; the run cannot pass):\n\n")
		for _, c := range r.Refused {
			fmt.Fprintf(&b, "- %s\n", mdEscape(c))
		}
	}
	if len(r.Problems) > 0 {
		b.WriteString("\n**Left out of the comparison:**\n\n")
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "- %s\n", mdEscape(p))
		}
	}
	if plotFile != "" {
		fmt.Fprintf(&b, "\n![paired ratios](%s)\n", plotFile)
	}
	fmt.Fprintf(&b, "\n**How to read this.** Each row compares the candidate with the base repeat by repeat: "+
		"both builds ran in one run, interleaved, and every repeat gives one paired value, the ratio candidate/base "+
		"(shown as a percentage change) or, for an absolute threshold, the difference candidate − base. "+
		"The change is the median of those paired values and the brackets a %s bootstrap confidence interval of it. "+
		"*Regression* means the whole interval lies beyond the threshold; *ok* that it lies within it; "+
		"*improvement* that it lies entirely on the better side of the minimum effect; "+
		"*inconclusive* that it straddles the threshold, and the row says about how many paired repeats would likely settle it.\n",
		percent(r.Confidence))
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("writing the gate's markdown: %w", err)
	}
	return nil
}

// comparedSentence says what was compared and how.
func comparedSentence(r *gate.Result) string {
	side := func(name string, bin string) string {
		if bin == "" {
			return "`" + name + "`"
		}
		return fmt.Sprintf("`%s` (`%s`)", name, bin)
	}
	var where []string
	if r.Scenario != "" {
		where = append(where, fmt.Sprintf("scenario `%s`", r.Scenario))
	}
	if r.Platform != "" {
		where = append(where, fmt.Sprintf("platform `%s`", r.Platform))
	}
	loc := ""
	if len(where) > 0 {
		loc = " in " + strings.Join(where, " on ")
	}
	group := "pooled over"
	if r.Group == gate.GroupVariant {
		group = "judged per variant for"
	}
	variants := ""
	if len(r.Variants) > 0 {
		variants = fmt.Sprintf(" %s %d variant%s (%s)", group, len(r.Variants), plural(len(r.Variants)), mdEscape(strings.Join(r.Variants, ", ")))
		variants = "," + variants
	}
	s := fmt.Sprintf("Compared candidate %s with base %s%s: %d repeat%s each, paired and interleaved in one run, "+
		"%s confidence, minimum effect %s%s; exit code %d.",
		side(r.Candidate, shortHash(r.CandidateBinary)), side(r.Base, shortHash(r.BaseBinary)), loc,
		r.Repeats, plural(r.Repeats), percent(r.Confidence), percent(r.MinEffect), variants, r.Exit)
	if r.Identical {
		s += " The two binaries are identical (same SHA-256): any change shown is noise."
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// table writes rows as a Markdown table.
func table(b *bytes.Buffer, r *gate.Result, rows []gate.Row) {
	h := headers(r).list()
	fmt.Fprintf(b, "| %s |\n|%s\n", strings.Join(h, " | "), strings.Repeat(" --- |", len(h)))
	for _, row := range rows {
		cs := rowCells(r, row).list()
		for i := range cs {
			cs[i] = mdEscape(cs[i])
		}
		if row.Verdict == gate.Regression || row.Verdict == gate.Inconclusive {
			cs[len(cs)-1] = "**" + cs[len(cs)-1] + "**"
		}
		fmt.Fprintf(b, "| %s |\n", strings.Join(cs, " | "))
	}
}

// mdEscape keeps text on one line and out of the table syntax.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\r", " ", "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}
