package conformance

import (
	"context"
	"os/exec"
	"strings"
	"time"
)

// FindTools looks for the outside programs the checks run: prometheus and
// h2spec on PATH, else h2spec through `go tool -n h2spec` when this is a
// meshbench checkout with go (the version go.mod pins). self is the
// program to re-execute as a conformance child.
func FindTools(ctx context.Context, self string) Tools {
	t := Tools{Self: self}
	if p, err := exec.LookPath("prometheus"); err == nil {
		t.Prometheus = p
	}
	if p, err := exec.LookPath("h2spec"); err == nil {
		t.H2Spec = p
	} else if _, err := exec.LookPath("go"); err == nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "go", "tool", "-n", "h2spec").Output(); err == nil {
			t.H2Spec = strings.TrimSpace(string(out))
		}
	}
	return t
}
