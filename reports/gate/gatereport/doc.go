// Package gatereport renders a gate's decision (a *gate.Result) for the
// places a reviewer meets it: a verdict table for the terminal
// (Terminal), a pull-request comment (Markdown, gate.md), a strip chart of
// the paired values (Plot, gate-ratios.png and .svg), a JUnit report for
// CI (JUnit, gate.junit.xml), and all of them with gate.json in one
// directory (WriteDir).
//
// Every rendering shows the same figures per decision row: the medians of
// both builds, the median paired change with its bootstrap confidence
// interval, the threshold the verdict was judged against and the verdict
// itself. Relative rows read as percentage changes of the candidate over
// the base; absolute rows as differences in the metric's unit.
package gatereport
