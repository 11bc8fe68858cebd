package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// lockedBuffer is a bytes.Buffer safe for a writer and a reader in
// different goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitAddrs waits until out holds the "http ADDR" and "grpc ADDR" lines.
func waitAddrs(t *testing.T, out *lockedBuffer, done <-chan int) map[string]string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		addrs := map[string]string{}
		for line := range strings.Lines(out.String()) {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
				addrs[k] = v
			}
		}
		if addrs["http"] != "" && addrs["grpc"] != "" {
			return addrs
		}
		select {
		case code := <-done:
			t.Fatalf("backend exited %d before printing its addresses: %q", code, out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("no addresses printed: %q", out.String())
	return nil
}

func TestBackendVerb(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"backend", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0",
			"--name", "verb-1", "--latency", "fixed:1ms", "--response-size", "42", "--seed", "3"}, &stdout, &stderr)
	}()
	addrs := waitAddrs(t, &stdout, done)

	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addrs["http"] + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body) != 42 || resp.Header.Get("X-Backend") != "verb-1" {
		t.Errorf("GET: %d, %d bytes, X-Backend %q", resp.StatusCode, len(body), resp.Header.Get("X-Backend"))
	}

	cc, err := grpc.NewClient(addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	r, err := testgrpc.NewTestServiceClient(cc).UnaryCall(cctx, &testgrpc.SimpleRequest{})
	if err != nil || len(r.GetPayload().GetBody()) != 42 {
		t.Errorf("UnaryCall: %v, %d bytes", err, len(r.GetPayload().GetBody()))
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after cancel, want 0; stderr %q", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("backend did not stop after cancel")
	}
	if _, err := c.Get("http://" + addrs["http"] + "/"); err == nil {
		t.Error("backend still serving after exit")
	}
}

func TestBackendVerbBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no listen", []string{}, "--listen is required"},
		{"bad latency", []string{"--listen", "127.0.0.1:0", "--latency", "uniform:5ms"}, `latency "uniform:5ms": want uniform:MIN-MAX, e.g. uniform:1ms-5ms`},
		{"bad error rate", []string{"--listen", "127.0.0.1:0", "--error-rate", "2"}, "error rate 2: want a number in [0, 1]"},
		{"unparsable error rate", []string{"--listen", "127.0.0.1:0", "--error-rate", "lots"}, `invalid value "lots" for flag -error-rate`},
		{"unknown flag", []string{"--listen", "127.0.0.1:0", "--frob"}, "flag provided but not defined: -frob"},
		{"extra argument", []string{"--listen", "127.0.0.1:0", "extra"}, `unexpected argument "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), append([]string{"backend"}, tc.args...), &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tc.want)
			}
		})
	}
}

func TestDiscoveryVerbBadFlags(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(bad, []byte("clusters: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no listen", []string{}, "--listen is required"},
		{"missing kubeconfig", []string{"--listen", "127.0.0.1:0", "--kubeconfig", filepath.Join(dir, "none")}, "configuring the Kubernetes client"},
		{"broken kubeconfig", []string{"--listen", "127.0.0.1:0", "--kubeconfig", bad}, "configuring the Kubernetes client"},
		{"unknown flag", []string{"--listen", "127.0.0.1:0", "--frob"}, "flag provided but not defined: -frob"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), append([]string{"discovery"}, tc.args...), &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tc.want)
			}
		})
	}
}
