package suite

import (
	"fmt"
	"os"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/conformance/checks/balancing"
	"github.com/meshbench/meshbench/conformance/checks/corehttp"
	"github.com/meshbench/meshbench/conformance/checks/grpccheck"
	"github.com/meshbench/meshbench/conformance/checks/h2"
	"github.com/meshbench/meshbench/conformance/checks/lifecycle"
	"github.com/meshbench/meshbench/conformance/checks/multiprotocol"
	"github.com/meshbench/meshbench/conformance/checks/observability"
	"github.com/meshbench/meshbench/conformance/checks/resilience"
	"github.com/meshbench/meshbench/conformance/checks/security"
)

// Checks returns every check, in profile order.
func Checks() []conformance.Check {
	var out []conformance.Check
	for _, f := range []func() []conformance.Check{
		corehttp.Checks,
		grpccheck.Checks,
		multiprotocol.Checks,
		balancing.Checks,
		resilience.Checks,
		security.Checks,
		observability.Checks,
		lifecycle.Checks,
		h2.Checks,
	} {
		out = append(out, f()...)
	}
	return out
}

// Child runs the conformance child job named by conformance.ChildEnv and
// returns the process's exit code.
func Child() int {
	job := os.Getenv(conformance.ChildEnv)
	if job == grpccheck.ChildJob {
		return grpccheck.Child()
	}
	fmt.Fprintf(os.Stderr, "conformance: unknown child job %q\n", job)
	return 2
}
