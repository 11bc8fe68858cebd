// Package runner runs a scenario on a platform: every cell of the matrix,
// in the order the scenario gives (interleaved, so that slow drifts of the
// machine spread over all variants alike), each deployed, loaded, measured
// and torn down in turn.
//
// A run writes its results directory as package reports describes it:
// run.json (rewritten atomically at the start and after every cell, so a
// reader never sees half of it and an interrupted run keeps what it
// finished) and one directory per cell with result.json, the load's
// HdrHistogram interval log, the generated proxy configurations and every
// process's log. A cell that fails is recorded as failed with its error and
// the run goes on; a canceled context stops the run after tearing the
// current cell down, and marks the run incomplete.
package runner
