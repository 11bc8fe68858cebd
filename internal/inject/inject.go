package inject

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Kinds of injected regression.
const (
	// KindCPU busy-waits for the amount in every request the proxy
	// forwards.
	KindCPU = "cpu"
	// KindLatency sleeps for the amount in every request, in the kernel.
	KindLatency = "latency"
)

// Anchor is the line of proxy/forward.go after which the injected call
// (or, for KindCPU, its defer) goes: the first line of the handler of
// every forwarded request.
const Anchor = "func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {"

// Build compiles meshproxy from the module at root into out, with the
// regression kind of amount d in every forwarded request. Extra
// environment (GOFLAGS, CGO_ENABLED) is the caller's.
func Build(ctx context.Context, root, out, kind string, d time.Duration) error {
	if d <= 0 || d > time.Second {
		return fmt.Errorf("injecting %s: amount %s: want more than 0 and at most 1s", kind, d)
	}
	// spin busy-waits; it never yields the proxy's one P (GOMAXPROCS=1).
	spin := fmt.Sprintf(`	end := time.Now().Add(%d)
	x := uint64(1)
	for time.Now().Before(end) {
		for i := 0; i < 64; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	injectedSink = x
`, d.Nanoseconds())
	var body, call string
	switch kind {
	case KindCPU:
		// When the handler returns, in a goroutine that first lets the
		// rest of the exchange (the response's flush, HTTP/2 trailers) go
		// out: CPU per request, almost no latency.
		call = "\n\tdefer injectedRegression()"
		body = "\tgo func() {\n\t\truntime.Gosched()\n\t" + strings.ReplaceAll(spin, "\n\t", "\n\t\t") + "\t}()\n"
	case KindLatency:
		// In the request's path, before it is forwarded.
		call = "\n\tinjectedRegression()"
		body = spin
	default:
		return fmt.Errorf("injecting: kind %q: want %s or %s", kind, KindCPU, KindLatency)
	}
	src := filepath.Join(root, "proxy", "forward.go")
	orig, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("injecting %s: %w", kind, err)
	}
	if bytes.Count(orig, []byte(Anchor)) != 1 {
		return fmt.Errorf("injecting %s: %s has no single line %q to inject after: update inject.Anchor", kind, src, Anchor)
	}
	patched := bytes.Replace(orig, []byte(Anchor), []byte(Anchor+call), 1)
	tmp, err := os.MkdirTemp("", "meshproxy-inject-")
	if err != nil {
		return fmt.Errorf("injecting %s: %w", kind, err)
	}
	defer os.RemoveAll(tmp)
	added := "package proxy\n\nimport (\n\t\"runtime\"\n\t\"time\"\n)\n\n" +
		"var (\n\t_ = runtime.Gosched\n\t_ = time.Now\n)\n\n" +
		"var injectedSink uint64\n\n" +
		"// injectedRegression is compiled in by internal/inject only.\nfunc injectedRegression() {\n" + body + "}\n"
	files := map[string]string{
		src: filepath.Join(tmp, "forward.go"),
		filepath.Join(root, "proxy", "zz_injected_regression.go"): filepath.Join(tmp, "injected.go"),
	}
	if err := os.WriteFile(files[src], patched, 0o644); err != nil {
		return fmt.Errorf("injecting %s: %w", kind, err)
	}
	if err := os.WriteFile(files[filepath.Join(root, "proxy", "zz_injected_regression.go")], []byte(added), 0o644); err != nil {
		return fmt.Errorf("injecting %s: %w", kind, err)
	}
	overlay, err := json.Marshal(map[string]any{"Replace": files})
	if err != nil {
		return fmt.Errorf("injecting %s: %w", kind, err)
	}
	ov := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(ov, overlay, 0o644); err != nil {
		return fmt.Errorf("injecting %s: %w", kind, err)
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("injecting %s: %w", kind, err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-overlay", ov, "-o", abs, "./cmd/meshproxy")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("injecting %s: go build: %w: %s", kind, err, strings.TrimSpace(string(b)))
	}
	return nil
}
