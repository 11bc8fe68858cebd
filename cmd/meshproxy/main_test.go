package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildProxy compiles this command into a temporary directory.
func buildProxy(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "meshproxy")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeConfig(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "proxy.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidate(t *testing.T) {
	good := writeConfig(t, "listeners:\n- address: 127.0.0.1:4140\n  routes: [{cluster: c}]\nclusters:\n- {name: c, endpoints: [127.0.0.1:8080]}\n")
	bad := writeConfig(t, "listeners:\n- address: 127.0.0.1:4140\n  routes: [{cluster: c}]\nclusters:\n- {name: c, endpoints: [127.0.0.1:8080]}\n- name: d\n  endpoints: [10.0.0:80]\n")
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"--config", good, "--validate"}, &stdout, &stderr); code != 0 {
		t.Errorf("good config: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "ok") {
		t.Errorf("good config output: %q", stdout.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := run(t.Context(), []string{"--config", bad, "--validate"}, &stdout, &stderr); code != 2 {
		t.Errorf("bad config: exit %d, want 2", code)
	}
	if want := bad + `:7: clusters[1].endpoints[0]: "10.0.0:80": invalid IP address "10.0.0"`; !strings.Contains(stderr.String(), want) {
		t.Errorf("bad config message %q does not contain %q", stderr.String(), want)
	}
	stdout.Reset()
	stderr.Reset()
	open := writeConfig(t, "admin: 0.0.0.0:9901\nlisteners:\n- address: 127.0.0.1:4140\n  routes: [{cluster: c}]\nclusters:\n- {name: c, endpoints: [127.0.0.1:8080]}\n")
	if code := run(t.Context(), []string{"--config", open, "--validate"}, &stdout, &stderr); code != 0 {
		t.Errorf("admin beyond loopback: exit %d, want 0 (a warning, not an error): %s", code, stderr.String())
	}
	if want := open + `: warning: admin: "0.0.0.0:9901" is not a loopback address`; !strings.Contains(stderr.String(), want) {
		t.Errorf("admin beyond loopback: stderr %q does not contain %q", stderr.String(), want)
	}
	stderr.Reset()
	if run(t.Context(), []string{"--config", good, "--validate"}, io.Discard, &stderr); stderr.Len() != 0 {
		t.Errorf("good config: stderr %q", stderr.String())
	}
	for _, args := range [][]string{{}, {"--nope"}, {"--config", good, "extra"}, {"--config", good, "--log-level", "loud"}} {
		if code := run(t.Context(), args, io.Discard, io.Discard); code != 2 {
			t.Errorf("args %q: exit %d, want 2", args, code)
		}
	}
}

// TestSIGTERMDrains runs the real binary, sends SIGTERM while a request is
// in flight, and checks the request completes and the process exits 0.
func TestSIGTERMDrains(t *testing.T) {
	bin := buildProxy(t)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	beLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	be := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		io.WriteString(w, "done")
	})}
	go be.Serve(beLn)
	defer be.Close()
	listen, admin := freeAddr(t), freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf("admin: %s\ndrain_timeout: 20s\nlisteners:\n- address: %s\n  routes: [{cluster: c}]\nclusters:\n- {name: c, endpoints: [%s]}\n", admin, listen, beLn.Addr()))
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if err := waitReady(admin); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + listen + "/")
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	<-started
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// While draining, the listener refuses new connections.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(release)
	if r := <-got; r != "200 done" {
		t.Errorf("in-flight request: %s", r)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("proxy did not exit after draining\n%s", logs.String())
	}
}

// TestAdaptiveStacks: the proxy runs with adaptivestackstart=1 added to
// GODEBUG (keeping the PID the platforms watch), and an operator's own
// setting of it wins.
func TestAdaptiveStacks(t *testing.T) {
	bin := buildProxy(t)
	for _, tc := range []struct{ env, want string }{
		{"", "GODEBUG=adaptivestackstart=1"},
		{"GODEBUG=madvdontneed=1", "GODEBUG=madvdontneed=1,adaptivestackstart=1"},
		{"GODEBUG=adaptivestackstart=0", "GODEBUG=adaptivestackstart=0"},
	} {
		admin := freeAddr(t)
		cfg := writeConfig(t, fmt.Sprintf("admin: %s\nlisteners:\n- address: %s\n  routes: [{cluster: c}]\nclusters:\n- {name: c, endpoints: [127.0.0.1:1]}\n", admin, freeAddr(t)))
		cmd := exec.Command(bin, "--config", cfg)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		if tc.env != "" {
			cmd.Env = append(cmd.Env, tc.env)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if err := waitReady(admin); err != nil {
			cmd.Process.Kill()
			t.Fatal(err)
		}
		environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, kv := range strings.Split(string(environ), "\x00") {
			if strings.HasPrefix(kv, "GODEBUG=") {
				got = append(got, kv)
			}
		}
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("started with %q: the proxy's GODEBUG %q, want %q", tc.env, got, tc.want)
		}
	}
}

// waitReady waits up to 10 s for the proxy's admin server at admin to
// answer /ready.
func waitReady(admin string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/ready")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("proxy not ready: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
