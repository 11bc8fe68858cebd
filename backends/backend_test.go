package backends_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/backends"
)

// start runs a backend on loopback for the duration of the test.
func start(t *testing.T, cfg backends.Config) *backends.Backend {
	t.Helper()
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	b, err := backends.New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return b
}

// h1Client returns an HTTP/1.1 client whose connections are closed before
// the backends of the test shut down.
func h1Client(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

// h2cClient returns an h2c (prior knowledge) client like h1Client.
func h2cClient(t *testing.T) *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

// do sends one request and returns the response with its body read.
func do(t *testing.T, c *http.Client, method, url, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, string(b)
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		cfg  backends.Config
		want string
	}{
		{backends.Config{Latency: "uniform:5ms"}, `latency "uniform:5ms": want uniform:MIN-MAX`},
		{backends.Config{ErrorRate: 1.5}, "error rate 1.5: want a number in [0, 1]"},
		{backends.Config{ErrorRate: -0.1}, "error rate -0.1"},
		{backends.Config{ResponseSize: -1}, "response size -1: want 0..67108864 bytes"},
	} {
		_, err := backends.New(tc.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}

func TestHTTPProtocolsHeaderAndSize(t *testing.T) {
	b := start(t, backends.Config{Name: "b-1", ResponseSize: 100})
	url := "http://" + b.HTTPAddr() + "/any/path?x=1"
	for _, tc := range []struct {
		name   string
		client *http.Client
		major  int
	}{
		{"http1", h1Client(t), 1},
		{"h2c", h2cClient(t), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, tc.client, http.MethodPost, url, strings.Repeat("y", 5000))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if resp.ProtoMajor != tc.major {
				t.Errorf("protocol %s, want major %d", resp.Proto, tc.major)
			}
			if got := resp.Header.Get("X-Backend"); got != "b-1" {
				t.Errorf("X-Backend = %q, want b-1", got)
			}
			if len(body) != 100 {
				t.Errorf("body %d bytes, want 100", len(body))
			}
		})
	}
}

func TestDefaultNameIsAddress(t *testing.T) {
	b := start(t, backends.Config{})
	resp, body := do(t, h1Client(t), http.MethodGet, "http://"+b.HTTPAddr()+"/", "")
	if got := resp.Header.Get("X-Backend"); got != b.HTTPAddr() || b.Name() != got {
		t.Errorf("X-Backend = %q, Name() = %q, want %q", got, b.Name(), b.HTTPAddr())
	}
	if resp.StatusCode != 200 || body != "" {
		t.Errorf("default response: %d %q, want 200 and an empty body", resp.StatusCode, body)
	}
}

func TestFixedDelayOverHTTP(t *testing.T) {
	b := start(t, backends.Config{Latency: "fixed:20ms"})
	c := h1Client(t)
	url := "http://" + b.HTTPAddr() + "/"
	do(t, c, http.MethodGet, url, "") // warm the connection
	for range 5 {
		t0 := time.Now()
		resp, _ := do(t, c, http.MethodGet, url, "")
		el := time.Since(t0)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if el < 20*time.Millisecond || el > 200*time.Millisecond {
			t.Errorf("fixed:20ms request took %s, want [20ms, 200ms)", el)
		}
	}
}

// TestStallOverHTTP: a request sent inside a stall window completes at
// the window's end, and one sent outside the windows is not delayed. A
// request that the machine sends later than planned (past the window it
// was meant for, or into the next) is not judged: the test moves on to
// the next window.
func TestStallOverHTTP(t *testing.T) {
	const period, length = time.Second, 400 * time.Millisecond
	b := start(t, backends.Config{Latency: "stall:1s/400ms"}) // windows [1s, 1.4s), [2s, 2.4s), ... after Start
	c := h1Client(t)
	url := "http://" + b.HTTPAddr() + "/"
	do(t, c, http.MethodGet, url, "") // outside any window, warms the connection
	inWindow := func(at time.Time) bool {
		d := at.Sub(b.Started())
		return d >= period && d%period < length
	}
	const tries = 5
	for k := 1; ; k++ {
		if k > tries {
			t.Fatalf("no request of %d was sent inside its stall window: the machine is too busy", tries)
		}
		windowEnd := b.Started().Add(time.Duration(k)*period + length)
		time.Sleep(time.Until(windowEnd.Add(-length + 100*time.Millisecond)))
		t0 := time.Now()
		do(t, c, http.MethodGet, url, "")
		done := time.Now()
		if !inWindow(t0) {
			continue
		}
		// The backend wakes at the window's end on a timer; 150 ms is a
		// hundred times a virtual machine's timer lateness.
		if done.Before(windowEnd) || done.Sub(windowEnd) > 150*time.Millisecond {
			t.Errorf("request sent at +%s inside the window completed at +%s, want at its end +%s",
				t0.Sub(b.Started()), done.Sub(b.Started()), windowEnd.Sub(b.Started()))
		}
		break
	}
	for k := 1; ; k++ {
		if k > tries {
			t.Fatalf("no request of %d was sent outside the stall windows: the machine is too busy", tries)
		}
		gap := b.Started().Add(time.Duration(k)*period + length + 100*time.Millisecond)
		if time.Now().After(gap) {
			continue
		}
		time.Sleep(time.Until(gap))
		t0 := time.Now()
		if inWindow(t0) {
			continue
		}
		do(t, c, http.MethodGet, url, "")
		// A request on loopback takes well under a millisecond: 100 ms
		// would be a stall.
		if el := time.Since(t0); el > 100*time.Millisecond {
			t.Errorf("request outside the windows took %s", el)
		}
		break
	}
}

func TestCancelledRequestStopsWaiting(t *testing.T) {
	b := start(t, backends.Config{Latency: "fixed:10s"})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.HTTPAddr()+"/", nil)
	_, err := h1Client(t).Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request error %v, want a deadline", err)
	}
	// Shutdown (in Cleanup) would wait for the 10s delay if the handler
	// had not noticed the client going away.
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	if err := b.Shutdown(sctx); err != nil {
		t.Errorf("Shutdown with an abandoned request: %v", err)
	}
}

func TestErrorRateHTTP(t *testing.T) {
	b := start(t, backends.Config{Name: "flaky", ErrorRate: 0.3, Seed: 42})
	c := h2cClient(t)
	url := "http://" + b.HTTPAddr() + "/"
	const n = 2000
	failed := 0
	for range n {
		resp, body := do(t, c, http.MethodGet, url, "")
		switch resp.StatusCode {
		case http.StatusServiceUnavailable:
			failed++
			if !strings.Contains(body, "injected error") || resp.Header.Get("X-Backend") != "flaky" {
				t.Fatalf("503 body %q header %q", body, resp.Header.Get("X-Backend"))
			}
		case http.StatusOK:
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	near(t, "share of 503", float64(failed)/n, 0.3, 0.05)
}

func TestHealthzUnaffected(t *testing.T) {
	b := start(t, backends.Config{Name: "sick", ErrorRate: 1, Latency: "fixed:5s"})
	c := h1Client(t)
	t0 := time.Now()
	resp, body := do(t, c, http.MethodGet, "http://"+b.HTTPAddr()+"/healthz", "")
	if resp.StatusCode != 200 || body != "ok" || resp.Header.Get("X-Backend") != "sick" {
		t.Errorf("/healthz: %d %q %q", resp.StatusCode, body, resp.Header.Get("X-Backend"))
	}
	if el := time.Since(t0); el > time.Second {
		t.Errorf("/healthz took %s", el)
	}
	// And the admin endpoint is not delayed either; then make the backend
	// answer quickly so that the error shows.
	resp, _ = do(t, c, http.MethodPut, "http://"+b.HTTPAddr()+"/_backend/config", `{"latency":"none"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	if resp, _ := do(t, c, http.MethodGet, "http://"+b.HTTPAddr()+"/other", ""); resp.StatusCode != 503 {
		t.Errorf("error rate 1: status %d, want 503", resp.StatusCode)
	}
}

func getConfig(t *testing.T, c *http.Client, b *backends.Backend) map[string]any {
	t.Helper()
	resp, body := do(t, c, http.MethodGet, "http://"+b.HTTPAddr()+"/_backend/config", "")
	if resp.StatusCode != 200 {
		t.Fatalf("GET config: %d %s", resp.StatusCode, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("GET config: %v in %s", err, body)
	}
	return m
}

func TestAdminConfig(t *testing.T) {
	b := start(t, backends.Config{Name: "adm", Latency: "fixed:1ms", ResponseSize: 10})
	c := h1Client(t)
	url := "http://" + b.HTTPAddr() + "/"
	cfgURL := "http://" + b.HTTPAddr() + "/_backend/config"

	want := map[string]any{"name": "adm", "latency": "fixed:1ms", "error_rate": 0.0, "response_size": 10.0, "concurrency": 0.0}
	if got := getConfig(t, c, b); !equalJSON(got, want) {
		t.Errorf("GET config = %v, want %v", got, want)
	}

	// A subset: response size and error rate; latency stays.
	resp, body := do(t, c, http.MethodPut, cfgURL, `{"response_size":100,"error_rate":1}`)
	if resp.StatusCode != 200 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	want = map[string]any{"name": "adm", "latency": "fixed:1ms", "error_rate": 1.0, "response_size": 100.0, "concurrency": 0.0}
	if got := getConfig(t, c, b); !equalJSON(got, want) {
		t.Errorf("after PUT config = %v, want %v", got, want)
	}
	if resp, _ := do(t, c, http.MethodGet, url, ""); resp.StatusCode != 503 {
		t.Errorf("after error_rate 1: status %d", resp.StatusCode)
	}
	resp, _ = do(t, c, http.MethodPut, cfgURL, `{"error_rate":0,"latency":"fixed:30ms"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	t0 := time.Now()
	resp, body = do(t, c, http.MethodGet, url, "")
	if el := time.Since(t0); resp.StatusCode != 200 || len(body) != 100 || el < 30*time.Millisecond {
		t.Errorf("after PUT: %d, %d bytes, %s; want 200, 100 bytes, >= 30ms", resp.StatusCode, len(body), el)
	}
	if p := b.Personality(); p.Latency.String() != "fixed:30ms" || p.ResponseSize != 100 || p.ErrorRate != 0 {
		t.Errorf("Personality() = %+v", p)
	}

	// Invalid input: 400 with the reason, and nothing changes, not even
	// the valid fields of the same request.
	for _, tc := range []struct{ body, want string }{
		{`{"latency":"uniform:5ms","response_size":1}`, `latency "uniform:5ms": want uniform:MIN-MAX`},
		{`{"error_rate":2,"response_size":1}`, "error rate 2"},
		{`{"response_size":-5}`, "response size -5"},
		{`{"concurrency":-1}`, "concurrency -1"},
		{`{"latancy":"fixed:1ms"}`, `unknown field "latancy"`},
		{`{"name":"other"}`, "name cannot be changed"},
		{`not json`, "decode backend config"},
	} {
		resp, body := do(t, c, http.MethodPut, cfgURL, tc.body)
		if resp.StatusCode != 400 || !strings.Contains(body, tc.want) {
			t.Errorf("PUT %s: %d %q, want 400 containing %q", tc.body, resp.StatusCode, body, tc.want)
		}
	}
	want = map[string]any{"name": "adm", "latency": "fixed:30ms", "error_rate": 0.0, "response_size": 100.0, "concurrency": 0.0}
	if got := getConfig(t, c, b); !equalJSON(got, want) {
		t.Errorf("after invalid PUTs config = %v, want %v", got, want)
	}
	if resp, _ := do(t, c, http.MethodDelete, cfgURL, ""); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE config: %d", resp.StatusCode)
	}
}

func TestSetPersonality(t *testing.T) {
	b := start(t, backends.Config{})
	if err := b.SetPersonality(backends.Personality{ErrorRate: 3}); err == nil {
		t.Error("SetPersonality accepted error rate 3")
	}
	if err := b.SetPersonality(backends.Personality{ResponseSize: 7}); err != nil {
		t.Fatal(err)
	}
	if _, body := do(t, h1Client(t), http.MethodGet, "http://"+b.HTTPAddr()+"/", ""); len(body) != 7 {
		t.Errorf("body %d bytes, want 7", len(body))
	}
}

func equalJSON(a, b map[string]any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestConcurrencyQueuesRequests: with one worker and a 20 ms delay, five
// simultaneous requests are served one after the other, so the k-th to
// finish took at least k × 20 ms. (Lower bounds only: a busy machine can
// make them slower, never faster.)
func TestConcurrencyQueuesRequests(t *testing.T) {
	b := start(t, backends.Config{Latency: "fixed:20ms", Concurrency: 1})
	url := "http://" + b.HTTPAddr() + "/"
	begin := time.Now()
	took := make(chan time.Duration, 5)
	for range 5 {
		go func() {
			resp, err := http.Get(url)
			if err != nil {
				t.Error(err)
				took <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			took <- time.Since(begin)
		}()
	}
	var all []time.Duration
	for range 5 {
		all = append(all, <-took)
	}
	slices.Sort(all)
	for k, d := range all {
		if min := time.Duration(k+1) * 20 * time.Millisecond; d < min-time.Millisecond {
			t.Errorf("request %d finished after %v, want at least %v (queued behind %d)", k+1, d, min, k)
		}
	}
	if err := b.SetPersonality(backends.Personality{Concurrency: -1}); err == nil {
		t.Error("negative concurrency accepted")
	}
}
