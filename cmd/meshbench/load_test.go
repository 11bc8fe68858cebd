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
	"time"

	"github.com/meshbench/meshbench/loadgen"
)

// TestLoadVerbTargets: a repeated --target spreads the connections over
// the targets, and fewer connections than targets is a usage error.
func TestLoadVerbTargets(t *testing.T) {
	var urls []string
	for _, name := range []string{"a", "b"} {
		urls = append(urls, serveHTTP(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", name)
			io.WriteString(w, "ok")
		})+"/")
	}
	out := filepath.Join(t.TempDir(), "r.json")
	var stdout, stderr bytes.Buffer
	// Open loop: each connection owns every other send slot, so both
	// targets get requests unless one connection stalls for the whole
	// half second. (Closed loop, the first connection may take every
	// request before the second has dialled.)
	code := run(t.Context(), []string{"load", "--target", urls[0], "--target", urls[1], "--connections", "2",
		"--rate", "200", "--requests", "100", "--out", out, "--quiet"}, &stdout, &stderr)
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

// TestLoadServe: with --serve, the status goes from warmup or measuring to
// done, the result file is served once the run ended (not before), and
// the command exits after POST /exit.
func TestLoadServe(t *testing.T) {
	target := serveHTTP(t, okHandler)
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()

	dir := t.TempDir()
	out, hlog := filepath.Join(dir, "result-load.json"), filepath.Join(dir, "latency.hlog")
	code := make(chan int, 1)
	go func() {
		code <- run(t.Context(), []string{"load", "--target", target + "/", "--rate", "200",
			"--duration", "1s", "--warmup", "300ms", "--out", out, "--hdr-log", hlog, "--quiet", "--serve", addr}, io.Discard, io.Discard)
	}()
	get := func(path string) (*http.Response, []byte) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return nil, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	phases := map[string]bool{}
	deadline := time.Now().Add(10 * time.Second)
	var st loadgen.Status
	for time.Now().Before(deadline) {
		if resp, b := get("/status"); resp != nil {
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatalf("status %q: %v", b, err)
			}
			phases[st.Phase] = true
			if st.Phase == loadgen.PhaseDone || st.Phase == loadgen.PhaseFailed {
				break
			}
			// The run may end between the two requests: a served file
			// is wrong only if the status still says the run goes on.
			if resp, _ := get("/files/result-load.json"); resp == nil || resp.StatusCode != http.StatusNotFound {
				var after loadgen.Status
				if resp, b := get("/status"); resp == nil || json.Unmarshal(b, &after) != nil || (after.Phase != loadgen.PhaseDone && after.Phase != loadgen.PhaseFailed) {
					t.Fatalf("result served before the run ended: %v (status then %+v)", resp, after)
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.Phase != loadgen.PhaseDone || !phases[loadgen.PhaseMeasuring] {
		t.Fatalf("phases seen %v, last %+v", phases, st)
	}
	resp, b := get("/files/result-load.json")
	var res struct {
		Requests int64 `json:"requests"`
	}
	if resp == nil || resp.StatusCode != http.StatusOK || json.Unmarshal(b, &res) != nil || res.Requests == 0 {
		t.Fatalf("result: %v %q", resp, b)
	}
	if resp, b := get("/files/latency.hlog"); resp == nil || resp.StatusCode != http.StatusOK || len(b) == 0 {
		t.Fatalf("histogram log: %v", resp)
	}
	select {
	case c := <-code:
		t.Fatalf("exited (%d) before POST /exit", c)
	default:
	}
	if r, err := http.Post("http://"+addr+"/exit", "", nil); err != nil || r.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /exit: %v %v", r, err)
	}
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit %d", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still running 5 s after POST /exit")
	}
}

// TestLoadMixAndSearch: --mix runs two streams at once and keeps each
// one's figures; --search writes its probes; bad modes are usage errors.
func TestLoadMixAndSearch(t *testing.T) {
	base := serveHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(3 * time.Millisecond)
		}
		io.WriteString(w, "ok")
	})
	dir := t.TempDir()
	mixFile := filepath.Join(dir, "mix.json")
	if err := os.WriteFile(mixFile, []byte(`[{"name": "fast", "targets": ["`+base+`/"], "protocol": "http1", "share": 0.5, "connections": 2},
		{"name": "slow", "targets": ["`+base+`/slow"], "protocol": "http1", "share": 0.5, "connections": 4}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "mix.json.out")
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"load", "--mix", "@" + mixFile, "--rate", "200", "--duration", "1s", "--out", out, "--quiet"}, &stdout, &stderr); code != 0 {
		t.Fatalf("mix: exit %d: %s %s", code, stdout.String(), stderr.String())
	}
	var res loadgen.Result
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Mix) != 2 || res.Mix[0].Stream != "fast" || res.Mix[1].Latency.P50 < 3000 || res.Mix[0].Latency.P50 >= 3000 ||
		res.Requests != res.Mix[0].Requests+res.Mix[1].Requests || res.Mix[0].Histogram == "" {
		t.Errorf("mix result: %d streams, requests %d, %+v", len(res.Mix), res.Requests, res.Mix)
	}
	if !strings.Contains(stdout.String(), "stream slow (http1)") {
		t.Errorf("summary lacks the streams:\n%s", stdout.String())
	}

	stdout.Reset()
	out = filepath.Join(dir, "search.json")
	if code := run(t.Context(), []string{"load", "--target", base + "/slow", "--connections", "8", "--duration", "300ms",
		"--search", "p99=50ms,max=400,start=100", "--out", out, "--quiet"}, &stdout, &stderr); code != 0 {
		t.Fatalf("search: exit %d: %s %s", code, stdout.String(), stderr.String())
	}
	b, _ = os.ReadFile(out)
	res = loadgen.Result{}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.Search == nil || len(res.Search.Probes) < 2 || res.Search.Objective.P99us != 50000 || res.Search.Objective.Max != 400 {
		t.Errorf("search result: %+v", res.Search)
	}
	if !strings.Contains(stdout.String(), "max rate meeting the objective") {
		t.Errorf("summary lacks the search:\n%s", stdout.String())
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--mix", "[]"}, "--mix: no stream"},
		{[]string{"--mix", "{"}, "--mix: want a JSON list of streams"},
		{[]string{"--mix", `[{"name": "a", "colour": 1}]`}, `unknown field "colour"`},
		{[]string{"--mix", "@/nonexistent/mix.json"}, "no such file"},
		{[]string{"--target", base, "--mix", `[{"name": "a", "targets": ["` + base + `"], "rate": 1, "connections": 1}]`}, "leave out --target"},
		{[]string{"--target", base, "--search", "p99"}, "want key=value pairs"},
		{[]string{"--target", base, "--search", "p99=1ms"}, "max must be a positive rate"},
		{[]string{"--target", base, "--engine", "wrk"}, `--engine "wrk"`},
		{[]string{"--target", base, "--engine", "fortio", "--search", "p99=1ms,max=10"}, "cannot run --mix or --search"},
		{[]string{"--target", base, "--start-at", "soon"}, "want an RFC 3339 time"},
		{[]string{"--target", base, "--protocol", "h2c", "--new-connection-per-request", "--requests", "1"}, "HTTP/1.1 only"},
	} {
		stderr.Reset()
		code := run(t.Context(), append([]string{"load", "--quiet"}, tc.args...), io.Discard, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

// TestLoadEngineFortio: --engine fortio measures with fortio's runners and
// writes the same result schema, marked with its engine.
func TestLoadEngineFortio(t *testing.T) {
	target := serveHTTP(t, okHandler)
	out := filepath.Join(t.TempDir(), "r.json")
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"load", "--engine", "fortio", "--target", target + "/",
		"--rate", "100", "--connections", "2", "--duration", "1s", "--out", out, "--quiet"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout.String(), stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res loadgen.Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.Engine != loadgen.EngineFortio || res.Requests < 90 || res.Histogram == "" || !strings.Contains(stdout.String(), "fortio: from send") {
		t.Errorf("engine %q, %d requests, histogram %d bytes; summary:\n%s", res.Engine, res.Requests, len(res.Histogram), stdout.String())
	}
	stderr.Reset()
	if code := run(t.Context(), []string{"load", "--engine", "fortio", "--target", target + "/", "--arrival", "poisson", "--rate", "10", "--duration", "1s"}, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "not supported by fortio") {
		t.Errorf("poisson arrivals with fortio: exit %d, %s", code, stderr.String())
	}
}

// serveHTTP serves h on a loopback port until the test ends and returns
// its base URL, http://127.0.0.1:PORT.
func serveHTTP(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// okHandler answers every request "ok".
func okHandler(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }
