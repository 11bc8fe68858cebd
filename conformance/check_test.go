package conformance

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func nop(*Env) error { return nil }

func TestValidate(t *testing.T) {
	ok := Check{ID: "core-http/a", Title: "t", Asserts: "a", Run: nop}
	for _, tc := range []struct {
		checks []Check
		want   string
	}{
		{[]Check{ok}, ""},
		{[]Check{ok, ok}, "listed twice"},
		{[]Check{{ID: "core-http", Title: "t", Asserts: "a", Run: nop}}, "an ID is <profile>/<name>"},
		{[]Check{{ID: "core-http/Bad_Name", Title: "t", Asserts: "a", Run: nop}}, "an ID is <profile>/<name>"},
		{[]Check{{ID: "speed/x", Title: "t", Asserts: "a", Run: nop}}, `unknown profile "speed"`},
		{[]Check{{ID: "grpc/x", Title: "t", Asserts: "a"}}, "needs Run"},
		{[]Check{{ID: "grpc/x", Title: "t", Run: nop}}, "needs Run, Title and Asserts"},
	} {
		err := Validate(tc.checks)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%v): %v, want %q", tc.checks[0].ID, err, tc.want)
		}
	}
}

func TestSelect(t *testing.T) {
	var all []Check
	for _, id := range []string{"core-http/http1", "core-http/h2c", "grpc/unary", "h2/h2spec"} {
		all = append(all, Check{ID: id})
	}
	ids := func(cs []Check) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.ID)
		}
		return strings.Join(s, " ")
	}
	if got := ids(Select(all, "core-http", nil)); got != "core-http/http1 core-http/h2c" {
		t.Errorf("profile core-http: %s", got)
	}
	if got := ids(Select(all, "", regexp.MustCompile("h2"))); got != "core-http/h2c h2/h2spec" {
		t.Errorf("--run h2: %s", got)
	}
	if got := ids(Select(all, "grpc", regexp.MustCompile("h2"))); got != "" {
		t.Errorf("profile grpc, --run h2: %q", got)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status Status
		reason string
	}{
		{nil, StatusPass, ""},
		{errors.New("saw 3 of 10"), StatusFail, "saw 3 of 10"},
		{Unsupported("no %s", "maglev"), StatusUnsupported, "no maglev"},
		{fmt.Errorf("starting: %w", Unsupported("no mtls")), StatusUnsupported, "no mtls"},
		{Skipped("prometheus missing"), StatusSkipped, "prometheus missing"},
		{configOnly("rendered"), StatusConfigOnly, "rendered"},
	} {
		s, r := Classify(tc.err)
		if s != tc.status || r != tc.reason {
			t.Errorf("Classify(%v) = %s %q, want %s %q", tc.err, s, r, tc.status, tc.reason)
		}
	}
}

// TestRunOne runs checks that pass, fail, panic and need a capability
// the target lacks, and records what each measured.
func TestRunOne(t *testing.T) {
	target := &Target{Name: "nginx"}
	o := Options{Dir: t.TempDir()}
	cases := []struct {
		c    Check
		want Status
	}{
		{Check{ID: "core-http/ok", Run: func(e *Env) error { e.Figure("requests", 10, ""); return nil }}, StatusPass},
		{Check{ID: "core-http/bad", Run: func(e *Env) error { return errors.New("boom") }}, StatusFail},
		{Check{ID: "core-http/panic", Run: func(e *Env) error { panic("oops") }}, StatusFail},
	}
	for _, tc := range cases {
		r := RunOne(t.Context(), target, tc.c, o, nil)
		if r.Status != tc.want {
			t.Errorf("%s: %s %q, want %s", tc.c.ID, r.Status, r.Reason, tc.want)
		}
	}
	r := RunOne(t.Context(), target, cases[0].c, o, nil)
	if len(r.Figures) != 1 || r.Figures[0].Value != 10 {
		t.Errorf("figures: %v", r.Figures)
	}
	cleaned := false
	r = RunOne(t.Context(), target, Check{ID: "core-http/cleanup", Run: func(e *Env) error {
		e.Cleanup(func() { cleaned = true })
		return errors.New("x")
	}}, o, nil)
	if !cleaned {
		t.Error("cleanup did not run")
	}
}

// TestRunInterrupted cancels a run in its second check: the first
// check's result is kept, the interrupted one has none, and the report
// says it is incomplete.
func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	checks := []Check{
		{ID: "core-http/a", Title: "a", Asserts: "a", Run: nop},
		{ID: "core-http/b", Title: "b", Asserts: "b", Run: func(e *Env) error {
			cancel()
			<-e.Context().Done()
			return e.Context().Err()
		}},
		{ID: "core-http/c", Title: "c", Asserts: "c", Run: nop},
	}
	rep, err := Run(ctx, Options{Checks: checks, Targets: []*Target{{Name: "reference"}}, Dir: t.TempDir()})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	if len(rep.Proxies) != 1 || len(rep.Proxies[0].Results) != 1 || rep.Proxies[0].Results[0].ID != "core-http/a" || !rep.Incomplete || rep.Failed() {
		t.Errorf("report after the interrupt: %+v", rep)
	}
}
