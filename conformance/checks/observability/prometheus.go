package observability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshbench/meshbench/conformance"
)

const (
	// scrapeInterval is how often Prometheus scrapes the proxy.
	scrapeInterval = time.Second
	// promJob is the scrape job's name, the job label of the proxy's series.
	promJob = "proxy"
	// promReadyTimeout bounds Prometheus's start, until /-/ready answers.
	promReadyTimeout = 15 * time.Second
	// firstScrapeTimeout bounds the wait for the first scrape: Prometheus
	// 2.x hands its targets to the scrape manager on a 5 s tick after it
	// starts, whatever the scrape interval.
	firstScrapeTimeout = 15 * time.Second
	// pollInterval is how often the check asks Prometheus whether a new
	// scrape has landed.
	pollInterval = 50 * time.Millisecond
)

// promServer is a Prometheus server a check started, scraping one proxy.
type promServer struct {
	// url is its HTTP API's base, http://127.0.0.1:port.
	url     string
	target  string // the proxy's metrics URL
	client  *http.Client
	logPath string
	done    chan struct{}
}

// startPrometheus starts the Prometheus server bin with a configuration in
// a new directory of e that scrapes metricsURL every scrapeInterval, its
// storage in that directory and its web server on a free loopback port
// (no lifecycle or admin API), and waits until it is ready. It is
// killed, by its PID, when the check ends.
func startPrometheus(e *conformance.Env, bin, metricsURL string) (*promServer, error) {
	u, err := url.Parse(metricsURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("the proxy's metrics URL %q is not an http(s) URL", metricsURL)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	params := ""
	if u.RawQuery != "" {
		b, err := json.Marshal(u.Query())
		if err != nil {
			return nil, fmt.Errorf("encoding the query of %s: %w", metricsURL, err)
		}
		params = "    params: " + string(b) + "\n"
	}
	dir, err := e.Dir()
	if err != nil {
		return nil, err
	}
	listen, err := e.Addr()
	if err != nil {
		return nil, err
	}
	// JSON strings are YAML strings: %q-like quoting without Go escapes.
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	cfg := fmt.Sprintf("global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n"+
		"scrape_configs:\n  - job_name: %s\n    scheme: %s\n    metrics_path: %s\n%s    static_configs:\n      - targets: [%s]\n",
		scrapeInterval, scrapeInterval, scrapeInterval, promJob, u.Scheme, q(path), params, q(u.Host))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("writing the Prometheus configuration: %w", err)
	}
	logPath := filepath.Join(dir, "prometheus.log")
	log, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating the Prometheus log: %w", err)
	}
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen,
		"--log.level=info")
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, log, log
	// Killed if meshbench dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	p := &promServer{url: "http://" + listen, target: metricsURL, client: &http.Client{Timeout: 5 * time.Second},
		logPath: logPath, done: make(chan struct{})}
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	pid := cmd.Process.Pid
	e.Cleanup(func() {
		select {
		case <-p.done:
		default:
			// The process this check started, by its PID.
			if proc, err := os.FindProcess(pid); err == nil {
				proc.Kill()
			}
			<-p.done
		}
	})
	ctx, cancel := context.WithTimeout(e.Context(), promReadyTimeout)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/-/ready", nil)
		if err != nil {
			return nil, err
		}
		if resp, err := p.client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("prometheus exited before it was ready (%v)\n%s", waitErr, p.logTail(1500))
		case <-ctx.Done():
			return nil, fmt.Errorf("prometheus not ready at %s/-/ready after %v\n%s", p.url, promReadyTimeout, p.logTail(1500))
		case <-time.After(pollInterval):
		}
	}
}

// logTail is the end of Prometheus's log.
func (p *promServer) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// sample is one element of an instant vector.
type sample struct {
	labels map[string]string
	value  float64
}

// query evaluates the PromQL expression q at time at (now when zero) by
// /api/v1/query and returns its instant vector (a scalar is one sample
// without labels).
func (p *promServer) query(ctx context.Context, q string, at time.Time) ([]sample, error) {
	v := url.Values{"query": {q}}
	if !at.IsZero() {
		v.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1e3, 'f', 3, 64))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/api/v1/query?"+v.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("query %s: reading the answer: %w", q, err)
	}
	var out struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("query %s: %s: %w", q, resp.Status, err)
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("query %s: Prometheus answered %s (%s: %s)", q, resp.Status, out.ErrorType, out.Error)
	}
	switch out.Data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(out.Data.Result, &vec); err != nil {
			return nil, fmt.Errorf("query %s: decoding the vector: %w", q, err)
		}
		res := make([]sample, 0, len(vec))
		for _, s := range vec {
			f, err := parseValue(s.Value)
			if err != nil {
				return nil, fmt.Errorf("query %s: %w", q, err)
			}
			res = append(res, sample{labels: s.Metric, value: f})
		}
		return res, nil
	case "scalar":
		var s [2]any
		if err := json.Unmarshal(out.Data.Result, &s); err != nil {
			return nil, fmt.Errorf("query %s: decoding the scalar: %w", q, err)
		}
		f, err := parseValue(s)
		if err != nil {
			return nil, fmt.Errorf("query %s: %w", q, err)
		}
		return []sample{{value: f}}, nil
	default:
		return nil, fmt.Errorf("query %s: a %s, want an instant vector", q, out.Data.ResultType)
	}
}

// parseValue reads the value of a [time, "value"] pair.
func parseValue(v [2]any) (float64, error) {
	s, ok := v[1].(string)
	if !ok {
		return 0, fmt.Errorf("value %v is not a string", v[1])
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("value %q: %w", s, err)
	}
	return f, nil
}

// byLabel runs q at at and returns its samples' values by the value of
// label.
func (p *promServer) byLabel(ctx context.Context, q, label string, at time.Time) (map[string]float64, error) {
	ss, err := p.query(ctx, q, at)
	if err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(ss))
	for _, s := range ss {
		out[s.labels[label]] += s.value
	}
	return out, nil
}

// lastScrape returns the time of the latest scrape of the proxy that
// Prometheus holds, and whether it holds one.
func (p *promServer) lastScrape(ctx context.Context) (time.Time, bool, error) {
	ss, err := p.query(ctx, `timestamp(up{job="`+promJob+`"})`, time.Time{})
	if err != nil || len(ss) == 0 {
		return time.Time{}, false, err
	}
	return time.UnixMilli(int64(math.Round(ss[0].value * 1e3))), true, nil
}

// waitScrapes waits until Prometheus holds n scrapes of the proxy that
// started after t, and returns the time of the n-th.
func (p *promServer) waitScrapes(ctx context.Context, t time.Time, n int) (time.Time, error) {
	bound := firstScrapeTimeout + time.Duration(n+1)*scrapeInterval
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var last time.Time
	seen := 0
	for {
		ts, ok, err := p.lastScrape(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			return time.Time{}, err
		case ok && ts.After(t) && ts.After(last):
			seen++
			last = ts
			if seen == n {
				return ts, nil
			}
		}
		select {
		case <-p.done:
			return time.Time{}, fmt.Errorf("prometheus exited\n%s", p.logTail(1500))
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("prometheus scraped %s %d times after %s in %v, want %d", p.target, seen, t.Format("15:04:05.000"), bound, n)
		case <-time.After(pollInterval):
		}
	}
}

// up checks that the scrape at time at succeeded (up == 1); otherwise it
// returns an error with the target's last scrape error.
func (p *promServer) up(ctx context.Context, at time.Time) error {
	ss, err := p.query(ctx, `up{job="`+promJob+`"}`, at)
	if err != nil {
		return err
	}
	if len(ss) == 1 && ss[0].value == 1 {
		return nil
	}
	why := p.targetError(ctx)
	return fmt.Errorf("prometheus could not scrape %s (up %v): %s", p.target, ss, why)
}

// targetError is the last scrape error Prometheus reports for its target.
func (p *promServer) targetError(ctx context.Context) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/api/v1/targets?state=active", nil)
	if err != nil {
		return err.Error()
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			ActiveTargets []struct {
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return "reading /api/v1/targets: " + err.Error()
	}
	var why []string
	for _, t := range out.Data.ActiveTargets {
		why = append(why, t.Health+" "+t.LastError)
	}
	if len(why) == 0 {
		return "no active target"
	}
	return strings.Join(why, "; ")
}
