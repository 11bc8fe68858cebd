package scenarios_test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/backends"
	"github.com/meshbench/meshbench/scenarios"
	"github.com/meshbench/meshbench/scenarios/local"
	"github.com/meshbench/meshbench/scenarios/platform"
)

func TestBuiltinNames(t *testing.T) {
	want := []string{"balancers", "default", "migration", "mtls", "peers", "protocols", "quick", "topologies"}
	if got := scenarios.BuiltinNames(); !slices.Equal(got, want) {
		t.Errorf("built-ins %v, want %v", got, want)
	}
}

// TestBuiltinsPlan loads every built-in and plans every cell, normal and
// quick: each plan has its proxies, every generated configuration passes
// the proxy's validation, and every backend waits at least 1 ms.
func TestBuiltinsPlan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, name := range scenarios.BuiltinNames() {
		t.Run(name, func(t *testing.T) {
			s, err := scenarios.Builtin(name)
			if err != nil {
				t.Fatal(err)
			}
			// Configurations with mTLS name their files relative to the
			// proxy's working directory, where the platform issues them.
			dir := t.TempDir()
			t.Chdir(dir)
			if s.Name != name || s.Description == "" || s.File != "scenarios/"+name+".yaml" {
				t.Errorf("name %q file %q description %q", s.Name, s.File, s.Description)
			}
			for _, quick := range []bool{false, true} {
				cells := cellsOf(t, s, scenarios.CellOptions{Quick: quick})
				if len(cells) == 0 {
					t.Fatal("no cells")
				}
				for _, c := range cells {
					if c.Repeat != 1 {
						continue
					}
					p, err := s.Plan(c, scenarios.PlanOptions{Quick: quick})
					if err != nil {
						t.Fatal(err)
					}
					want := 0
					switch p.Topology {
					case scenarios.Sidecar:
						want = len(p.Pods)
					case scenarios.DaemonSet:
						want = len(p.Nodes)
					case scenarios.ClientSidecar:
						want = 1
					case scenarios.ServerSidecar:
						want = len(p.Pods) - 1
					}
					if len(p.Proxies) != want {
						t.Errorf("%s: %d proxies, want %d", c.ID, len(p.Proxies), want)
					}
					if err := platform.WriteCertificates(p, dir, 0); err != nil {
						t.Fatal(err)
					}
					for _, px := range p.Proxies {
						validConfig(t, p, px)
					}
					specs := []scenarios.BackendSpec{}
					for _, pod := range p.Pods[1:] {
						specs = append(specs, *pod.Backend)
					}
					for _, e := range p.Events {
						specs = append(specs, e.Backend)
					}
					for _, b := range specs {
						l, err := backends.ParseLatency(b.Latency)
						if err != nil || l.Sample(rng) < time.Millisecond {
							t.Errorf("%s: backend latency %q: below 1 ms (%v)", c.ID, b.Latency, err)
						}
					}
					if p.Load.Connections < len(p.Load.Targets) {
						t.Errorf("%s: %d connections for %d targets", c.ID, p.Load.Connections, len(p.Load.Targets))
					}
				}
			}
		})
	}
}

// TestBuiltinBudgets keeps the suites within the time they promise.
func TestBuiltinBudgets(t *testing.T) {
	for _, c := range []struct {
		name  string
		o     scenarios.CellOptions
		limit time.Duration
	}{
		{"default", scenarios.CellOptions{}, 5 * time.Minute},
		{"quick", scenarios.CellOptions{}, 90 * time.Second},
		{"default", scenarios.CellOptions{Quick: true}, 90 * time.Second},
		{"mtls", scenarios.CellOptions{}, 5 * time.Minute},
	} {
		s, err := scenarios.Builtin(c.name)
		if err != nil {
			t.Fatal(err)
		}
		if d, err := s.EstimatedDuration(c.o); err != nil || d > c.limit {
			t.Errorf("%s %+v: estimated %v (%v), more than %v", c.name, c.o, d, err, c.limit)
		}
	}
	s, _ := scenarios.Builtin("default")
	want := []string{"baseline-none-none", "sidecar-peak_ewma-none", "daemonset-peak_ewma-none",
		"sidecar-round_robin-slow-replica", "sidecar-least_request-slow-replica", "sidecar-peak_ewma-slow-replica"}
	if got := variants(cellsOf(t, s, scenarios.CellOptions{})); !slices.Equal(got, want) {
		t.Errorf("default variants %v", got)
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mine.yaml")
	if err := os.WriteFile(file, []byte("services: [{name: api}]\nload: {rate: 5}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ arg, want string }{
		{"default", "default"},
		{"quick.yaml", "quick"},
		{"scenarios/balancers.yaml", "balancers"},
		{"scenarios/protocols", "protocols"},
		{file, "mine"},
	} {
		s, err := scenarios.Open(c.arg)
		if err != nil {
			t.Errorf("Open(%q): %v", c.arg, err)
			continue
		}
		if s.Name != c.want {
			t.Errorf("Open(%q) = %s, want %s", c.arg, s.Name, c.want)
		}
	}
	_, err := scenarios.Open("nosuch")
	if err == nil || !strings.Contains(err.Error(), "balancers, default, migration, mtls, peers, protocols, quick, topologies") {
		t.Errorf("unknown scenario: %v", err)
	}
	if _, err := scenarios.Builtin("nosuch"); err == nil {
		t.Error("Builtin(nosuch) succeeded")
	}
	// A file that exists wins over a built-in, and its errors name it.
	bad := filepath.Join(dir, "default.yaml")
	if err := os.WriteFile(bad, []byte("services: [{name: api}]\nload: {rate: 0}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := scenarios.Open(bad); err == nil || !strings.Contains(err.Error(), bad+":2: load.rate") {
		t.Errorf("Open(bad file): %v", err)
	}
}

func TestDescribe(t *testing.T) {
	for _, name := range scenarios.BuiltinNames() {
		s, err := scenarios.Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		o := scenarios.CellOptions{Quick: true}
		var b bytes.Buffer
		if err := s.Describe(&b, o, local.Loopback{}.Resolver); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		for _, c := range cellsOf(t, s, o) {
			if !strings.Contains(out, "\n  "+c.ID+"\n") {
				t.Errorf("%s: description lacks cell %s", name, c.ID)
			}
			if !strings.Contains(out, "\nvariant "+c.Variant+" {") {
				t.Errorf("%s: description lacks variant %s", name, c.Variant)
			}
		}
		for _, d := range s.Dimensions() {
			if !strings.Contains(out, d) {
				t.Errorf("%s: description lacks dimension %s", name, d)
			}
		}
	}
	s, _ := scenarios.Builtin("quick")
	var b bytes.Buffer
	if err := s.Describe(&b, scenarios.CellOptions{}, local.Loopback{}.Resolver); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"proxy sidecar-client-0 (sidecar of pod client-0 on node-0, admin 127.77.1.10:9901)",
		"proxy node-1 (node on node-1, admin 127.77.2.1:9901)",
		"original_dst:", "gateways:", "targets: http://127.77.1.1:4140/",
		"echo-1    node-1  127.77.2.10",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("description lacks %q:\n%s", want, b.String())
		}
	}
}
