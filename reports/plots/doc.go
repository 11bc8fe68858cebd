// Package plots draws the charts of a meshbench report with gonum/plot and
// renders them as PNG and SVG. It knows nothing of runs or results: the
// reports package turns a run into the plain series these builders take.
//
// Every chart is a Chart: one or more panels stacked on a shared x axis, a
// title, and a legend beside the panels (never over the data). Builders:
// Spectrum (latency by percentile on HdrHistogram's 1/(1−p) axis),
// Categories (medians with min–max error bars per category), LinePanel
// (x/y lines with optional error bars; AddMarker adds event markers,
// AddLevel horizontal levels, LogY a logarithmic y axis) and Stacked
// (shares as stacked bars).
package plots
