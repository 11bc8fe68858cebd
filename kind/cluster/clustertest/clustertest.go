package clustertest

import (
	"os"
	"testing"

	"github.com/meshbench/meshbench/kind/cluster"
)

// RequireEnv is the environment variable that turns a missing kind setup
// from a skip into a failure; CI (.ci/run) sets it to 1.
const RequireEnv = "MESHBENCH_REQUIRE_KIND"

// Require skips t when kind clusters cannot be made here (cluster.Available
// says why), or fails it when RequireEnv is 1.
func Require(t testing.TB) {
	t.Helper()
	if err := cluster.Available(); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("kind is required (%s=1) but not available: %v", RequireEnv, err)
		}
		t.Skipf("kind is not available: %v (../shared/kind-offline sets it up)", err)
	}
}
