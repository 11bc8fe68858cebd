package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadVerbTargets: a repeated --target spreads the connections over
// the targets, and fewer connections than targets is a usage error.
func TestLoadVerbTargets(t *testing.T) {
	var urls []string
	for _, name := range []string{"a", "b"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", name)
			io.WriteString(w, "ok")
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		urls = append(urls, "http://"+ln.Addr().String()+"/")
	}
	out := filepath.Join(t.TempDir(), "r.json")
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"load", "--target", urls[0], "--target", urls[1], "--connections", "2",
		"--requests", "100", "--out", out, "--quiet"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout.String(), stderr.String())
	}
	var res struct {
		Target    string           `json:"target"`
		Targets   []string         `json:"targets"`
		Endpoints map[string]int64 `json:"endpoints"`
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.Target != urls[0] || len(res.Targets) != 2 || res.Endpoints["a"] == 0 || res.Endpoints["b"] == 0 ||
		res.Endpoints["a"]+res.Endpoints["b"] != 100 {
		t.Errorf("result: %+v", res)
	}
	stderr.Reset()
	code = run(t.Context(), []string{"load", "--target", urls[0], "--target", urls[1], "--requests", "1"}, io.Discard, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "fewer than the 2 targets") {
		t.Errorf("one connection for two targets: exit %d, stderr %q", code, stderr.String())
	}
}
