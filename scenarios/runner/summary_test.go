package runner

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/loadgen"
	"github.com/meshbench/meshbench/peers"
	"github.com/meshbench/meshbench/reports/result"
	"github.com/meshbench/meshbench/scenarios"
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

func TestEngineCanRun(t *testing.T) {
	http := scenarios.LoadPlan{Protocol: loadgen.HTTP1, Connections: 4, Duration: time.Second, Rate: 100, Engine: loadgen.EngineFortio}
	if err := engineCanRun(http); err != nil {
		t.Errorf("fortio over HTTP/1.1: %v", err)
	}
	grpc := http
	grpc.Protocol = loadgen.GRPC
	if err := engineCanRun(grpc); err != nil {
		t.Errorf("fortio over gRPC: %v", err)
	}
	h2c := http
	h2c.Protocol, h2c.Streams = loadgen.H2C, 4
	mix := http
	mix.Protocol, mix.Mix = loadgen.ProtocolMix, []scenarios.StreamPlan{{Name: "a"}}
	search := http
	search.Rate, search.Search = 0, &loadgen.SearchSpec{Max: 100}
	for name, l := range map[string]scenarios.LoadPlan{"h2c with 4 streams": h2c, "mix": mix, "search": search} {
		var na *peers.NotApplicable
		if err := engineCanRun(l); !errors.As(err, &na) {
			t.Errorf("fortio, %s: %v, want n/a", name, err)
		}
		l.Engine = ""
		if err := engineCanRun(l); err != nil {
			t.Errorf("meshbench, %s: %v", name, err)
		}
	}
}
