package runner

import (
	"strings"
	"testing"

	"github.com/meshbench/meshbench/loadgen"
	"github.com/meshbench/meshbench/reports/result"
)

func TestCellSummary(t *testing.T) {
	r := &result.CellResult{Result: loadgen.Result{AchievedRate: 400, Latency: loadgen.Percentiles{P99: 2500}}}
	if got := cellSummary(r); got != "achieved 400.0 rps  p99 2.50 ms" {
		t.Errorf("plain: %q", got)
	}
	r.Search = &loadgen.SearchResult{MaxRate: 787.5, Probes: make([]loadgen.Probe, 9)}
	r.Invalid = "late sends"
	if got := cellSummary(r); !strings.HasPrefix(got, "max 787.5 rps within the objective (9 probes)") || !strings.HasSuffix(got, "INVALID: late sends") {
		t.Errorf("search, invalid: %q", got)
	}
}
