package suite

import (
	"os"
	"strings"
	"testing"

	"github.com/meshbench/meshbench/conformance"
)

func TestChecksValid(t *testing.T) {
	checks := Checks()
	if err := conformance.Validate(checks); err != nil {
		t.Fatal(err)
	}
	profiles := map[string]int{}
	for _, c := range checks {
		profiles[c.Profile()]++
	}
	for _, p := range conformance.Profiles() {
		if profiles[p] == 0 {
			t.Errorf("profile %s has no check", p)
		}
	}
}

// TestDocsNameEveryCheck holds docs/conformance.md to the suite: every
// check is described there.
func TestDocsNameEveryCheck(t *testing.T) {
	b, err := os.ReadFile("../../docs/conformance.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range Checks() {
		if !strings.Contains(string(b), "`"+c.ID+"`") {
			t.Errorf("docs/conformance.md does not describe %s", c.ID)
		}
	}
}
