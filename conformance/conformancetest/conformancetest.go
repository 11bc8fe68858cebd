package conformancetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/peers"
)

// Main passes what it found to the tests in these variables: the
// meshproxy binary it built and the h2spec binary ("" when none).
const (
	envMeshproxy = "MESHBENCH_TEST_MESHPROXY"
	envH2Spec    = "MESHBENCH_TEST_H2SPEC"
)

// Main builds meshproxy from this checkout, runs the tests and removes
// it. When the test binary is started as a conformance child
// (conformance.ChildEnv set), child runs instead and its result is the
// exit code. Call it from TestMain.
func Main(m *testing.M, child func() int) {
	if os.Getenv(conformance.ChildEnv) != "" && child != nil {
		os.Exit(child())
	}
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "conformancetest-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "meshproxy")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/meshbench/meshbench/cmd/meshproxy")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building meshproxy: %v\n%s", err, out)
			return 1
		}
		os.Setenv(envMeshproxy, bin)
		os.Setenv(envH2Spec, conformance.FindTools(ctx, "").H2Spec)
		return m.Run()
	}())
}

// Reference returns the reference proxy Main built.
func Reference(t testing.TB) *conformance.Target {
	t.Helper()
	bin := os.Getenv(envMeshproxy)
	if bin == "" {
		t.Fatal("conformancetest.Main did not run: call it from TestMain")
	}
	tg, err := conformance.Reference(bin)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// Peer returns an installed peer. Without its binary the test fails when
// MESHBENCH_REQUIRE_PEERS=1 (.ci/run sets it) and is skipped otherwise.
func Peer(t testing.TB, a peers.Adapter) *conformance.Target {
	t.Helper()
	tg, err := conformance.Peer(t.Context(), a)
	if err != nil {
		if os.Getenv("MESHBENCH_REQUIRE_PEERS") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return tg
}

// Broken returns a deliberately broken target (conformance.BrokenRelay,
// BrokenBuffering).
func Broken(t testing.TB, kind string) *conformance.Target {
	t.Helper()
	tg, err := conformance.Broken(kind)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// Tools are the outside programs: prometheus on PATH, the h2spec Main
// found (on PATH, else through `go tool -n h2spec`, the version go.mod
// pins), and this test binary as the conformance child. A check that
// needs a missing one ends skipped, which ExpectStatus turns into a
// failure when MESHBENCH_REQUIRE_TOOLS=1 (the Makefile's default).
func Tools(t testing.TB) conformance.Tools {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tools := conformance.Tools{Self: self, H2Spec: os.Getenv(envH2Spec)}
	if p, err := exec.LookPath("prometheus"); err == nil {
		tools.Prometheus = p
	}
	return tools
}

// Run runs check c against target with the sabotage (nil: none).
func Run(t testing.TB, target *conformance.Target, c conformance.Check, s *conformance.Sabotage) conformance.Result {
	t.Helper()
	o := conformance.Options{Dir: t.TempDir(), Tools: Tools(t), Sabotage: s}
	r := conformance.RunOne(t.Context(), target, c, o, nil)
	t.Logf("%s on %s: %s %s (%.0f ms) %v", c.ID, target.Name, r.Status, r.Reason, r.DurationMs, r.Figures)
	return r
}

// ExpectStatus runs the check and fails the test unless it ends with want.
func ExpectStatus(t testing.TB, target *conformance.Target, c conformance.Check, s *conformance.Sabotage, want conformance.Status) conformance.Result {
	t.Helper()
	r := Run(t, target, c, s)
	if r.Status != want {
		t.Errorf("%s on %s: %s (%s), want %s", c.ID, target.Name, r.Status, r.Reason, want)
	}
	if want == conformance.StatusSkipped || r.Status != conformance.StatusSkipped {
		return r
	}
	if os.Getenv("MESHBENCH_REQUIRE_TOOLS") == "1" {
		t.Errorf("%s skipped with MESHBENCH_REQUIRE_TOOLS=1: %s", c.ID, r.Reason)
	}
	return r
}

// Pass runs c against the reference proxy and requires a pass.
func Pass(t testing.TB, c conformance.Check) conformance.Result {
	t.Helper()
	return ExpectStatus(t, Reference(t), c, nil, conformance.StatusPass)
}

// Fail runs c against target with the sabotage and requires a fail.
func Fail(t testing.TB, target *conformance.Target, c conformance.Check, s *conformance.Sabotage) conformance.Result {
	t.Helper()
	return ExpectStatus(t, target, c, s, conformance.StatusFail)
}

// Find returns the check with ID id from checks.
func Find(t testing.TB, checks []conformance.Check, id string) conformance.Check {
	t.Helper()
	for _, c := range checks {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no check %s", id)
	return conformance.Check{}
}

// FailBecause runs c against the reference proxy with the sabotage and
// requires a fail whose reason says want: the check failed on its own
// assertion, not on a broken setup of the test.
func FailBecause(t testing.TB, c conformance.Check, s *conformance.Sabotage, want string) conformance.Result {
	t.Helper()
	r := Fail(t, Reference(t), c, s)
	if r.Status == conformance.StatusFail && !strings.Contains(r.Reason, want) {
		t.Errorf("%s failed for another reason: %q, want it to say %q", c.ID, r.Reason, want)
	}
	return r
}
