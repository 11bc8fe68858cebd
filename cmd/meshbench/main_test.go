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

func TestVerbs(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "meshbench ") {
		t.Errorf("version: %d %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run(t.Context(), []string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "version") {
		t.Errorf("help: %d %q", code, out.String())
	}
	errb.Reset()
	if code := run(t.Context(), []string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown verb "frobnicate"`) {
		t.Errorf("unknown verb: %d %q", code, errb.String())
	}
	if code := run(t.Context(), nil, &out, &errb); code != 2 {
		t.Errorf("no verb: exit %d, want 2", code)
	}
}

func TestLoadVerb(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "b")
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	defer srv.Close()
	dir := t.TempDir()
	out, fortio, hdr := filepath.Join(dir, "r.json"), filepath.Join(dir, "f.json"), filepath.Join(dir, "h.hlog")
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"load", "--target", "http://" + ln.Addr().String() + "/", "--rate", "100", "--duration", "1s",
		"--connections", "2", "-H", "X-Test: 1", "--label", "cell=x", "--out", out, "--fortio-json", fortio, "--hdr-log", hdr, "--quiet"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout.String(), stderr.String())
	}
	var res struct {
		Requests     int64             `json:"requests"`
		AchievedRate float64           `json:"achieved_rate"`
		Labels       map[string]string `json:"labels"`
		Histogram    string            `json:"histogram"`
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil || res.Requests < 90 || res.Labels["cell"] != "x" || res.Histogram == "" {
		t.Errorf("result: %v %+v", err, res)
	}
	for _, f := range []string{fortio, hdr} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	if !strings.Contains(stdout.String(), "achieved") {
		t.Errorf("summary: %s", stdout.String())
	}
	for _, args := range [][]string{
		{"load"},
		{"load", "--target", "http://x/", "--rate", "fast"},
		{"load", "--target", "http://x/", "-H", "nocolon"},
		{"load", "--target", "ftp://x/"},
	} {
		stderr.Reset()
		if code := run(t.Context(), args, io.Discard, &stderr); code != 2 || stderr.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}
