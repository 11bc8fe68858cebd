package kindtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// StaticBinary builds a Go program that prints msg, with CGO_ENABLED=0,
// into dir and returns its path.
func StaticBinary(t testing.TB, dir, msg string) string {
	t.Helper()
	src := filepath.Join(dir, "main.go")
	prog := fmt.Sprintf("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(%q) }\n", msg)
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "hello")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, src)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}
