package grpccheck

import (
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/conformance/conformancetest"
	"github.com/meshbench/meshbench/proxy/config"
)

func TestMain(m *testing.M) { conformancetest.Main(m, Child) }

func TestChecksValid(t *testing.T) {
	if err := conformance.Validate(Checks()); err != nil {
		t.Fatal(err)
	}
	for _, c := range Checks() {
		if c.Profile() != conformance.ProfileGRPC {
			t.Errorf("%s: not in profile %s", c.ID, conformance.ProfileGRPC)
		}
	}
}

// dropTrailers is a broken backend: gRPC responses end without trailers.
var dropTrailers = &conformance.Sabotage{Backend: func(o *conformance.BackendOptions) { o.DropTrailers = true }}

// dropTrailersReason is a part of the reason each check gives against a
// backend that drops trailers, where the failure is the call's error.
var dropTrailersReason = map[string]string{
	"grpc/unary":                "Internal",
	"grpc/server-streaming":     "want the end of the stream with OK",
	"grpc/client-streaming":     "Internal",
	"grpc/bidi-streaming":       "response 0 has 0 bytes, want 31415",
	"grpc/status-and-trailers":  "want FailedPrecondition",
	"grpc/deadline-propagation": "Internal",
	"grpc/metadata":             "Internal",
	"grpc/interop":              "of 14 interop cases passed",
}

// assertionFailures are the setups that fail a check's own assertion
// rather than its calls: the sabotage and a part of the reason.
func assertionFailures(t *testing.T, id string) (*conformance.Target, *conformance.Sabotage, string, bool) {
	switch id {
	case "grpc/deadline-propagation":
		// A route timeout shorter than the client's deadline: the proxy
		// rightly shortens grpc-timeout to it, so the backend sees much
		// less than the deadline the client had left.
		return conformancetest.Reference(t), &conformance.Sabotage{Config: func(c *config.Config) {
			c.Listeners[0].Routes[0].Timeout = config.Duration(200 * time.Millisecond)
		}}, "want at least", true
	case "grpc/metadata":
		// The route removes the custom metadata before forwarding.
		return conformancetest.Reference(t), &conformance.Sabotage{Config: func(c *config.Config) {
			c.Listeners[0].Routes[0].RequestHeaders.Remove = []string{mdText, mdBin}
		}}, "request metadata x-meshbench-md reached the backend as []", true
	case "grpc/server-streaming":
		// A proxy that holds each response until it ends.
		return conformancetest.Broken(t, conformance.BrokenBuffering), nil, "the proxy does not stream responses", true
	}
	return nil, nil, "", false
}

func TestChecks(t *testing.T) {
	for _, c := range Checks() {
		t.Run(strings.TrimPrefix(c.ID, "grpc/"), func(t *testing.T) {
			t.Run("pass", func(t *testing.T) { conformancetest.Pass(t, c) })
			t.Run("drop-trailers", func(t *testing.T) {
				r := conformancetest.Fail(t, conformancetest.Reference(t), c, dropTrailers)
				if want := dropTrailersReason[c.ID]; r.Status == conformance.StatusFail && !strings.Contains(r.Reason, want) {
					t.Errorf("%s failed for another reason: %q, want it to say %q", c.ID, r.Reason, want)
				}
			})
			target, s, reason, ok := assertionFailures(t, c.ID)
			if !ok {
				return
			}
			t.Run("assertion", func(t *testing.T) {
				r := conformancetest.Fail(t, target, c, s)
				if r.Status == conformance.StatusFail && !strings.Contains(r.Reason, reason) {
					t.Errorf("%s failed on %s for another reason: %q, want it to say %q", c.ID, target.Name, r.Reason, reason)
				}
			})
		})
	}
}

func TestInteropWithoutChild(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "grpc/interop")
	r := conformance.RunOne(t.Context(), conformancetest.Reference(t), c, conformance.Options{Dir: t.TempDir()}, nil)
	if r.Status != conformance.StatusSkipped {
		t.Errorf("%s without Tools.Self: %s (%s), want skipped", c.ID, r.Status, r.Reason)
	}
}

func TestChildUnknownJob(t *testing.T) {
	t.Setenv(conformance.ChildEnv, "no-such-job")
	if got := Child(); got != 2 {
		t.Errorf("Child() with job no-such-job = %d, want 2", got)
	}
}
