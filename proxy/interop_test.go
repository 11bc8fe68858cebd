package proxy_test

// grpc-go's interop test cases run through the proxy. The pinned interop
// server and client (go.mod tool directives, google.golang.org/grpc
// v1.85.0) run as subprocesses because they call log.Fatal on failure: the
// server listens in plaintext, the proxy sits in front of it with an h2c
// listener (protocol auto) and a TLS listener (protocol h2) that uses
// grpc's own test certificate, and the client is pointed only at the proxy.
//
//	go test ./proxy -run Interop -v

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbench/meshbench/proxy"
	"github.com/meshbench/meshbench/proxy/config"
)

// interopCases are the grpc-go interop test cases that need nothing but a
// plain TestService server (no credentials, no ORCA, no soak).
var interopCases = []string{
	"empty_unary",
	"large_unary",
	"client_streaming",
	"server_streaming",
	"ping_pong",
	"empty_stream",
	"timeout_on_sleeping_server",
	"cancel_after_begin",
	"cancel_after_first_response",
	"status_code_and_message",
	"special_status_message",
	"custom_metadata",
	"unimplemented_method",
	"unimplemented_service",
}

// interopMayMissProxy are the cases whose RPC may legitimately end on the
// client before the proxy sees a request: timeout_on_sleeping_server gives
// its call a 1ms deadline, which a TLS handshake alone can outlast, and
// cancel_after_begin cancels a stream that may not have sent its HEADERS
// yet.
var interopMayMissProxy = map[string]bool{
	"timeout_on_sleeping_server": true,
	"cancel_after_begin":         true,
}

const (
	// interopServerName is the name the client checks the proxy's TLS
	// certificate against: grpc's testdata/server1.pem is issued to
	// *.test.google.fr by testdata/ca.pem.
	interopServerName = "foo.test.google.fr"
	// interopClientTimeout bounds one interop client run.
	interopClientTimeout = 30 * time.Second
)

func TestInteropGRPC(t *testing.T) {
	serverBin := interopGoTool(t, "server")
	clientBin := interopGoTool(t, "client")
	grpcDir := interopModuleDir(t, "google.golang.org/grpc")
	certFile := filepath.Join(grpcDir, "testdata", "server1.pem")
	keyFile := filepath.Join(grpcDir, "testdata", "server1.key")
	caFile := filepath.Join(grpcDir, "testdata", "ca.pem")

	upstream := interopStartServer(t, serverBin)

	yml := fmt.Sprintf(`listeners:
- name: h2c
  address: 127.0.0.1:0
  protocol: auto
  routes:
  - match: {}
    cluster: interop
    timeout: 30s
- name: tls
  address: 127.0.0.1:0
  protocol: h2
  tls: {cert_file: %q, key_file: %q}
  routes:
  - match: {}
    cluster: interop
    timeout: 30s
clusters:
- name: interop
  protocol: same
  endpoints: [%s]
`, certFile, keyFile, upstream)
	srv := interopStartProxy(t, yml)

	for _, ln := range []struct {
		name string
		args []string
	}{
		{"h2c", nil},
		{"tls", []string{"--use_tls", "--use_test_ca", "--ca_file=" + caFile, "--server_host_override=" + interopServerName}},
	} {
		addr := srv.Addr(ln.name).(*net.TCPAddr)
		if !addr.IP.IsLoopback() {
			t.Fatalf("listener %s bound %v, not a loopback address", ln.name, addr)
		}
		if addr.String() == upstream {
			t.Fatalf("listener %s is the interop server's own address", ln.name)
		}
		t.Run(ln.name, func(t *testing.T) {
			groupBefore := interopRouteRequests(t, srv, ln.name)
			strict := 0
			for _, tc := range interopCases {
				if !interopMayMissProxy[tc] {
					strict++
				}
				t.Run(tc, func(t *testing.T) {
					before := interopRouteRequests(t, srv, ln.name)
					args := append([]string{
						"--server_host=127.0.0.1",
						"--server_port=" + strconv.Itoa(addr.Port),
						"--test_case=" + tc,
					}, ln.args...)
					interopRunClient(t, clientBin, args)
					// The client knows only the proxy's port, so it cannot
					// have reached the server directly; check that the
					// proxy counted the RPCs all the same.
					after := interopRouteRequests(t, srv, ln.name)
					switch {
					case after > before:
					case interopMayMissProxy[tc]:
						t.Logf("the RPC ended on the client before reaching the proxy (allowed for %s)", tc)
					default:
						t.Errorf("proxy route %s/0 counted %v requests before and %v after %s: traffic did not go through the proxy", ln.name, before, after, tc)
					}
				})
			}
			if got := interopRouteRequests(t, srv, ln.name) - groupBefore; got < float64(strict) {
				t.Errorf("proxy route %s/0 counted %v requests for %d cases, want at least %d", ln.name, got, len(interopCases), strict)
			}
		})
	}
}

var (
	interopToolMu    sync.Mutex
	interopToolPaths = map[string]string{}
	interopToolErrs  = map[string]error{}
)

// interopGoTool returns the path of the binary of the go.mod tool directive
// named name (`go tool -n name`, built on first use and cached by the go
// command). If it cannot be had the test is skipped, or fails when
// MESHBENCH_REQUIRE_TOOLS=1.
func interopGoTool(t testing.TB, name string) string {
	t.Helper()
	interopToolMu.Lock()
	defer interopToolMu.Unlock()
	path, ok := interopToolPaths[name]
	err := interopToolErrs[name]
	if !ok && err == nil {
		path, err = interopBuildTool(name)
		interopToolPaths[name], interopToolErrs[name] = path, err
	}
	if err != nil {
		if os.Getenv("MESHBENCH_REQUIRE_TOOLS") == "1" {
			t.Fatalf("pinned tool %q unavailable (MESHBENCH_REQUIRE_TOOLS=1): %v", name, err)
		}
		t.Skipf("skipping: pinned tool %q unavailable (set MESHBENCH_REQUIRE_TOOLS=1 to make this a failure): %v", name, err)
	}
	return path
}

func interopBuildTool(name string) (string, error) {
	root, err := interopModuleRoot()
	if err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("no go command: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "tool", "-n", name)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go tool -n %s: %w\n%s", name, err, stderr.Bytes())
	}
	path := strings.TrimSpace(string(out))
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("go tool -n %s printed %q: %w", name, path, err)
	}
	return path, nil
}

// interopModuleRoot returns the directory of the main module's go.mod.
func interopModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// interopModuleDir returns where the go command keeps the source of module
// path (which must be in the build list).
func interopModuleDir(t testing.TB, path string) string {
	t.Helper()
	root, err := interopModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", path)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Fatalf("go list -m %s: %v\n%s", path, err, out)
	}
	return dir
}

// interopBuffer is an io.Writer safe for the concurrent writes of a
// subprocess's stdout and stderr copiers.
type interopBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *interopBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *interopBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// interopStartServer runs the interop server (plaintext) on a free port and
// returns its loopback address once it accepts connections. It is killed
// when the test ends. The server binary takes only a port and binds it on
// every interface; the test dials it on 127.0.0.1 only.
func interopStartServer(t testing.TB, bin string) string {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := interopFreePort()
		if err != nil {
			t.Fatal(err)
		}
		addr, err := interopTryServer(t, bin, port)
		if err == nil {
			return addr
		}
		lastErr = err
		t.Logf("interop server on port %d: %v; retrying", port, err)
	}
	t.Fatalf("interop server did not start: %v", lastErr)
	return ""
}

func interopTryServer(t testing.TB, bin string, port int) (string, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--port="+strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "GRPC_GO_LOG_SEVERITY_LEVEL=info")
	out := &interopBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		return "", err
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	stop := func() {
		cancel()
		<-exited
	}

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			cancel()
			return "", fmt.Errorf("exited early: %v\n%s", waitErr, out.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("not accepting on %s after 15s: %v\n%s", addr, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("interop server output:\n%s", out.String())
		}
	})
	return addr, nil
}

// interopFreePort returns a loopback port that was free a moment ago.
func interopFreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// interopStartProxy starts the proxy in-process from yml and drains it when
// the test ends; its log is shown if the test failed.
func interopStartProxy(t testing.TB, yml string) *proxy.Server {
	t.Helper()
	cfg, err := config.Parse("interop.yaml", []byte(yml))
	if err != nil {
		t.Fatalf("config:\n%s\n%v", yml, err)
	}
	logs := &interopBuffer{}
	srv, err := proxy.New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("proxy shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("proxy log:\n%s", interopTail(logs.String(), 200))
		}
	})
	return srv
}

// interopRunClient runs the interop client with args and fails the test,
// showing its output, unless it exits 0 within interopClientTimeout.
func interopRunClient(t testing.TB, bin string, args []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), interopClientTimeout)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "GRPC_GO_LOG_SEVERITY_LEVEL=info")
	out := &interopBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("interop client %v: killed after %v\n%s", args, interopClientTimeout, out.String())
	}
	if err != nil {
		t.Fatalf("interop client %v: %v\n%s", args, err, out.String())
	}
	// Every case logs "<CaseName> done" at INFO when it ran to the end.
	if !interopDoneLine.MatchString(out.String()) {
		t.Fatalf("interop client %v exited 0 without reporting the case done:\n%s", args, out.String())
	}
	t.Logf("passed in %v", time.Since(start).Round(time.Millisecond))
}

var interopDoneLine = regexp.MustCompile(`(?m)INFO: \[interop\] \w+ done$`)

// interopRouteRequests returns request_total of the first (only) route of
// the named listener.
func interopRouteRequests(t testing.TB, srv *proxy.Server, listener string) float64 {
	t.Helper()
	fams, err := srv.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != "request_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" && l.GetValue() == listener+"/0" {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// interopTail returns the last n lines of s.
func interopTail(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

var _ io.Writer = (*interopBuffer)(nil)
