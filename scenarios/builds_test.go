package scenarios_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/meshbench/meshbench/scenarios"
)

func TestReferenceBuild(t *testing.T) {
	for impl, want := range map[string]struct {
		build string
		ok    bool
	}{
		"reference": {"", true}, "reference@base": {"base", true}, "reference@pr-12_a": {"pr-12_a", true},
		"reference@": {"", false}, "reference@Base": {"", false}, "reference@a/b": {"", false},
		"nginx": {"", false}, "nginx@base": {"", false}, "none": {"", false},
	} {
		b, ok := scenarios.ReferenceBuild(impl)
		if b != want.build || ok != want.ok {
			t.Errorf("ReferenceBuild(%q) = %q, %v; want %q, %v", impl, b, ok, want.build, want.ok)
		}
	}
}

func TestBuildsNamedInTheFile(t *testing.T) {
	s := parse(t, base+"matrix:\n  topology: [baseline, sidecar]\n  proxy: [reference@base, nginx, reference@candidate]\n")
	if got := s.Builds(); !slices.Equal(got, []string{"base", "candidate"}) {
		t.Errorf("Builds() = %v", got)
	}
	want := []string{"baseline-none", "sidecar-reference-base", "sidecar-nginx", "sidecar-reference-candidate"}
	if got := variants(cellsOf(t, s, scenarios.CellOptions{})); !slices.Equal(got, want) {
		t.Errorf("variants %v, want %v", got, want)
	}
	if _, err := s.WithBuilds([]string{"x"}); err == nil || !strings.Contains(err.Error(), "names its builds already") {
		t.Errorf("WithBuilds on a scenario with builds: %v", err)
	}
	// A bad build name is an unknown proxy, with the field.
	_, err := scenarios.Parse("t.yaml", []byte(base+"matrix:\n  proxy: [reference@Base]\n"))
	if err == nil || !strings.Contains(err.Error(), `matrix.proxy[0]: "reference@Base": unknown proxy`) {
		t.Errorf("bad build name: %v", err)
	}
}

func TestWithBuilds(t *testing.T) {
	cases := []struct {
		name, matrix string
		want         []string
	}{
		{"implicit proxy: a proxy dimension last, builds side by side",
			"matrix:\n  topology: [baseline, sidecar]\n  protocol: [http1, grpc]\n",
			[]string{"baseline-http1-none", "baseline-grpc-none",
				"sidecar-http1-reference-a", "sidecar-http1-reference-b",
				"sidecar-grpc-reference-a", "sidecar-grpc-reference-b"}},
		{"reference among peers is split in place",
			"matrix:\n  topology: [sidecar]\n  proxy: [nginx, reference]\n",
			[]string{"sidecar-nginx", "sidecar-reference-a", "sidecar-reference-b"}},
		{"include and exclude rules that name the reference proxy",
			"matrix:\n  topology: [sidecar]\n  proxy: [reference]\n  degradation: [none]\n" +
				"  include: [{degradation: slow}, {proxy: nginx, degradation: slow}]\n" +
				"  exclude: [{proxy: reference, degradation: none}]\n",
			[]string{"sidecar-reference-a-slow", "sidecar-reference-b-slow", "sidecar-nginx-slow"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := parse(t, base+c.matrix)
			ab, err := s.WithBuilds([]string{"a", "b"})
			if err != nil {
				t.Fatal(err)
			}
			cells := cellsOf(t, ab, scenarios.CellOptions{Repeats: 2})
			if got := variants(cells); !slices.Equal(got, c.want) {
				t.Errorf("variants %v, want %v", got, c.want)
			}
			if !slices.Equal(ab.Builds(), []string{"a", "b"}) {
				t.Errorf("Builds() = %v", ab.Builds())
			}
			// Every cell plans, with its build as the proxy.
			for _, cell := range cells {
				p, err := ab.Plan(cell, scenarios.PlanOptions{})
				if err != nil {
					t.Fatalf("plan %s: %v", cell.ID, err)
				}
				if p.ProxyImpl != cell.Labels["proxy"] && p.Topology != scenarios.Baseline {
					t.Errorf("cell %s runs %q", cell.ID, p.ProxyImpl)
				}
			}
			// The original is unchanged.
			if got := s.Builds(); len(got) != 0 {
				t.Errorf("original names builds %v", got)
			}
		})
	}
	s := parse(t, base+"matrix: {topology: [sidecar]}\n")
	for _, bad := range [][]string{nil, {"A"}, {"a/b"}} {
		if _, err := s.WithBuilds(bad); err == nil {
			t.Errorf("WithBuilds(%q) accepted", bad)
		}
	}
}
