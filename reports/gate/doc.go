// Package gate decides whether a candidate build of a proxy regressed
// against a base build, from an A/B run in which both ran side by side,
// repeat by repeat (meshbench run --proxy-binary base=... --proxy-binary
// candidate=...).
//
// A Spec (GATE.yaml, strictly decoded) lists the metrics to judge, each
// with a threshold (relative or absolute), the variants to compare, the
// confidence and the minimum effect size. Evaluate pairs every candidate
// cell with the base cell of the same variant and repeat, takes per-repeat
// paired ratios (or differences, for absolute thresholds), and bootstraps
// a confidence interval of their median. The verdict of a metric is
// regression when the whole interval lies beyond the threshold, ok when
// it lies within, improvement when it lies below the minimum effect on
// the good side, and inconclusive when it straddles the threshold; an
// inconclusive row says how many repeats would likely settle it.
//
// Comparisons are only between cells of one run: no figure from another
// run ever enters a verdict.
package gate
