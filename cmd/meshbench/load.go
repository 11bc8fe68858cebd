package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	fortiolog "fortio.org/log"
	"github.com/meshbench/meshbench/internal/atomicfile"
	"github.com/meshbench/meshbench/loadgen"
	"github.com/meshbench/meshbench/loadgen/fortioengine"
)

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("load", "meshbench load --target URL [--protocol http1|h2c|h2|grpc] [--rate R|max] [--connections C] [--duration D] [--warmup W] [--out result.json]", stderr)
	var s loadgen.Spec
	var rate string
	var targets, headers, labels multiFlag
	var out, fortioOut, hdrLog string
	var quiet bool
	fs.Var(&targets, "target", "`URL` to load (host:port for grpc); repeat it to spread the connections round robin over several targets")
	fs.StringVar(&s.Protocol, "protocol", "http1", "http1, h2c, h2 (TLS) or grpc")
	fs.StringVar(&rate, "rate", "max", "requests per second in all, or max for closed loop")
	fs.StringVar(&s.Arrival, "arrival", "uniform", "open-loop arrivals: uniform or poisson")
	fs.IntVar(&s.Connections, "connections", 1, "connections")
	fs.IntVar(&s.Streams, "streams", 1, "concurrent streams per connection (h2c, h2, grpc)")
	fs.DurationVar(&s.Duration, "duration", 0, "measured duration (default 10s unless --requests is set)")
	fs.Int64Var(&s.Requests, "requests", 0, "measured request count (0: bounded by --duration only)")
	fs.DurationVar(&s.Warmup, "warmup", 0, "unrecorded load before the measured part")
	fs.DurationVar(&s.Timeout, "timeout", loadgen.DefaultTimeout, "per-request timeout")
	fs.StringVar(&s.Method, "method", "", "HTTP method (default GET, POST with a body)")
	fs.IntVar(&s.BodySize, "body-size", 0, "request body (or gRPC payload) bytes")
	fs.IntVar(&s.ResponseSize, "response-size", 0, "gRPC response payload bytes to ask for")
	fs.Var(&headers, "H", "request header `Name: value` (repeatable; gRPC metadata for grpc)")
	fs.StringVar(&s.Authority, "authority", "", "Host header / :authority to send (to address a service through a proxy)")
	fs.StringVar(&s.GRPCMode, "grpc-mode", "unary", "grpc: unary calls, or stream (message round trips on one stream per worker)")
	fs.StringVar(&s.TLS.CAFile, "cacert", "", "trust this CA `file` (PEM)")
	fs.StringVar(&s.TLS.CertFile, "cert", "", "client certificate `file` (PEM) for mTLS")
	fs.StringVar(&s.TLS.KeyFile, "key", "", "client key `file` (PEM)")
	fs.StringVar(&s.TLS.ServerName, "server-name", "", "TLS server name to send and verify")
	fs.BoolVar(&s.TLS.Insecure, "insecure", false, "do not verify the server's certificate")
	fs.Var(&labels, "label", "`key=value` label copied into the result (repeatable)")
	fs.Uint64Var(&s.Seed, "seed", 0, "seed for Poisson arrivals (0: random)")
	var spin string
	fs.StringVar(&spin, "spin", "auto", "spin this long before each send instead of sleeping: a duration (0: never), or auto: 1.5ms, shorter above 166 req/s so that spinning costs at most a quarter of a core")
	fs.StringVar(&out, "out", "", "write the result JSON to this `file`")
	fs.StringVar(&fortioOut, "fortio-json", "", "also write the result in fortio's JSON format to this `file`")
	fs.StringVar(&hdrLog, "hdr-log", "", "also write a per-second HdrHistogram interval log to this `file`")
	fs.BoolVar(&quiet, "quiet", false, "no per-second progress on stderr")
	var mix, searchFlag, startAt, engine string
	fs.StringVar(&mix, "mix", "", "run several streams at once: a JSON list of streams (name, protocol, targets, share or rate, connections, streams, grpc_mode, body_size, response_size, authority), or @FILE holding one; replaces --target and --protocol (docs/loadgen.md)")
	fs.StringVar(&searchFlag, "search", "", "search for the highest rate meeting an objective, e.g. p99=10ms,errors=0.1%,max=20000 (also start, precision, probes); each probe runs --warmup then --duration")
	fs.DurationVar(&s.MaxSendLag, "max-send-lag", 0, fmt.Sprintf("a run whose p99 send lag (with its connection free) is above this is invalid (0: %v; negative: no bound)", loadgen.DefaultMaxSendLag))
	fs.Float64Var(&s.MaxConnectionWaits, "max-connection-waits", 0, fmt.Sprintf("a run in which more than this fraction of requests waited for a busy connection is invalid (0: %v)", loadgen.DefaultMaxConnectionWaits))
	fs.BoolVar(&s.NewConnectionPerRequest, "new-connection-per-request", false, "open a new connection (and TLS handshake) for every request; HTTP/1.1 only")
	fs.StringVar(&startAt, "start-at", "", "begin the run (its warm-up) at this RFC 3339 `time`, so that several generators share one schedule")
	fs.StringVar(&engine, "engine", loadgen.EngineMeshbench, "load engine: meshbench (open loop, from the intended send) or fortio (fortio's runners)")
	var serve string
	var linger time.Duration
	fs.StringVar(&serve, "serve", "", "serve the run's status (GET /status) and, once it ends, the --out and --hdr-log files (GET /files/NAME) on this `address` until POST /exit or --serve-linger; for a load generator in a pod")
	fs.DurationVar(&linger, "serve-linger", 10*time.Minute, "with --serve: how long to keep the files after the run")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	switch len(targets) {
	case 0:
	case 1:
		s.Target = targets[0]
	default:
		s.Targets = targets
	}
	if rate != "max" {
		r, err := strconv.ParseFloat(rate, 64)
		if err != nil || r <= 0 {
			fmt.Fprintf(stderr, "meshbench load: --rate %q: want a positive number of requests per second, or max\n", rate)
			return 2
		}
		s.Rate = r
	}
	if s.Duration == 0 && s.Requests == 0 {
		s.Duration = 10 * time.Second
	}
	if msg := loadModes(&s, mix, searchFlag, startAt, engine); msg != "" {
		fmt.Fprintf(stderr, "meshbench load: %s\n", msg)
		return 2
	}
	if spin != "auto" {
		d, err := time.ParseDuration(spin)
		if err != nil || d < 0 {
			fmt.Fprintf(stderr, "meshbench load: --spin %q: want a duration (0 to never spin) or auto\n", spin)
			return 2
		}
		s.SpinWindow = cmp.Or(d, -1)
	}
	s.Header = http.Header{}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			fmt.Fprintf(stderr, "meshbench load: -H %q: want \"Name: value\"\n", h)
			return 2
		}
		s.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	s.Labels = map[string]string{}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			fmt.Fprintf(stderr, "meshbench load: --label %q: want key=value\n", l)
			return 2
		}
		s.Labels[k] = v
	}
	if !quiet {
		s.Progress = func(sec loadgen.Second) {
			fmt.Fprintf(stderr, "t=%3ds  rate=%8.1f/s  p50=%-9s p99=%-9s errors=%d\n", sec.T+1, sec.Rate,
				time.Duration(sec.P50)*time.Microsecond, time.Duration(sec.P99)*time.Microsecond, sec.Errors)
		}
	}
	var rs *loadgen.ResultServer
	if serve != "" {
		var err error
		if rs, err = loadgen.StartResultServer(serve, s.Warmup, slog.New(slog.NewTextHandler(stderr, nil))); err != nil {
			fmt.Fprintf(stderr, "meshbench load: %v\n", err)
			return 2
		}
		fmt.Fprintf(stderr, "meshbench load: serving the status and result on %s\n", rs.Addr())
	}
	code := runLoadSpec(ctx, s, engine, out, fortioOut, hdrLog, stdout, stderr)
	if rs != nil {
		var err error
		if code != 0 && code != 130 {
			err = fmt.Errorf("meshbench load exited with status %d", code)
		}
		rs.Finish(err, out, hdrLog)
		rs.Wait(ctx, linger)
	}
	return code
}

// runLoadSpec runs the load and writes its files; it returns the exit
// status.
func runLoadSpec(ctx context.Context, s loadgen.Spec, engine, out, fortioOut, hdrLog string, stdout, stderr io.Writer) int {
	run := loadgen.Run
	if engine == loadgen.EngineFortio {
		run = fortioengine.Run
		fortiolog.SetLogLevelQuiet(fortiolog.Warning) // its per-thread info lines
	}
	res, err := run(ctx, s)
	if err != nil {
		fmt.Fprintf(stderr, "meshbench load: %v\n", err)
		return 2
	}
	printSummary(stdout, res)
	if out != "" {
		if err := writeJSON(out, res); err != nil {
			fmt.Fprintf(stderr, "meshbench load: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "result: %s\n", out)
	}
	if fortioOut != "" {
		if err := writeJSON(fortioOut, res.Fortio()); err != nil {
			fmt.Fprintf(stderr, "meshbench load: %v\n", err)
			return 1
		}
	}
	if hdrLog != "" {
		if err := writeIntervalLog(hdrLog, res); err != nil {
			fmt.Fprintf(stderr, "meshbench load: %v\n", err)
			return 1
		}
	}
	if res.Incomplete {
		fmt.Fprintln(stderr, "meshbench load: interrupted; the result holds what was measured and is marked incomplete")
		return 130
	}
	return 0
}

func printSummary(w io.Writer, r *loadgen.Result) {
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	req := "max (closed loop)"
	if r.RequestedRate > 0 {
		req = fmt.Sprintf("%.1f/s (%s)", r.RequestedRate, r.Arrival)
	}
	target := r.Target
	if len(r.Targets) > 1 {
		target = strings.Join(r.Targets, ",")
	}
	fmt.Fprintf(w, "%s %s: %d requests in %.1fs, requested %s, achieved %.1f/s\n", r.Protocol, target, r.Requests, r.DurationS, req, r.AchievedRate)
	if !r.Sustained {
		fmt.Fprintf(w, "RATE NOT SUSTAINED: %s\n", r.Reason)
	}
	if r.Invalid != "" {
		fmt.Fprintf(w, "INVALID RUN: %s\n", r.Invalid)
	}
	for _, p := range r.Mix {
		fmt.Fprintf(w, "  stream %s (%s): %d requests, requested %.1f/s, achieved %.1f/s, p50 %v p99 %v, errors %d\n",
			p.Stream, p.Protocol, p.Requests, p.RequestedRate, p.AchievedRate, us(p.Latency.P50), us(p.Latency.P99), p.Errors.Total)
	}
	if sr := r.Search; sr != nil {
		for _, p := range sr.Probes {
			verdict := "met"
			if !p.Met {
				verdict = "missed: " + p.Missed
			}
			fmt.Fprintf(w, "  probe %9.1f/s: achieved %9.1f/s, p50 %v p99 %v, %s\n", p.Rate, p.AchievedRate, us(p.Latency.P50), us(p.Latency.P99), verdict)
		}
		capped := ""
		if sr.Capped {
			capped = " (the search's max: the real maximum is higher)"
		}
		fmt.Fprintf(w, "max rate meeting the objective: %.1f/s%s; %s\n", sr.MaxRate, capped, sr.Limit)
	}
	from := "response time (from intended send):"
	if r.Engine == loadgen.EngineFortio {
		from = "response time (fortio: from send):  "
	}
	fmt.Fprintf(w, "%s p50 %v  p90 %v  p99 %v  p99.9 %v  max %v\n",
		from, us(r.Latency.P50), us(r.Latency.P90), us(r.Latency.P99), us(r.Latency.P999), us(r.Latency.Max))
	fmt.Fprintf(w, "service time (from actual send):    p50 %v  p90 %v  p99 %v  p99.9 %v  max %v\n",
		us(r.ServiceTime.P50), us(r.ServiceTime.P90), us(r.ServiceTime.P99), us(r.ServiceTime.P999), us(r.ServiceTime.Max))
	fmt.Fprintf(w, "errors: %d %v\n", r.Errors.Total, r.Errors.ByClass)
	if len(r.Endpoints) > 0 {
		fmt.Fprintf(w, "responses by backend: %v\n", r.Endpoints)
	}
}

// writeJSON writes v to path through a temporary file, so a reader never
// sees half a result.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding result: %w", err)
	}
	return atomicfile.Write(path, append(b, '\n'))
}

func writeIntervalLog(path string, r *loadgen.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing interval log: %w", err)
	}
	if err := loadgen.WriteIntervalLog(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing interval log: %w", err)
	}
	return nil
}

// loadModes applies --mix, --search, --start-at and --engine to s; it
// returns what is wrong with them, or "".
func loadModes(s *loadgen.Spec, mix, search, startAt, engine string) string {
	switch engine {
	case loadgen.EngineMeshbench, loadgen.EngineFortio:
	default:
		return fmt.Sprintf("--engine %q: want meshbench or fortio", engine)
	}
	if mix != "" {
		data := []byte(mix)
		if name, ok := strings.CutPrefix(mix, "@"); ok {
			b, err := os.ReadFile(name)
			if err != nil {
				return fmt.Sprintf("--mix: %v", err)
			}
			data = b
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s.Mix); err != nil {
			return fmt.Sprintf("--mix: want a JSON list of streams: %v", err)
		}
		if len(s.Mix) == 0 {
			return "--mix: no stream"
		}
		if s.Target != "" || len(s.Targets) > 0 {
			return "--mix names its targets per stream: leave out --target"
		}
	}
	if search != "" {
		fields := map[string]string{}
		for _, kv := range strings.Split(search, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Sprintf("--search %q: want key=value pairs such as p99=10ms,errors=0.1%%,max=20000", search)
			}
			fields[strings.TrimSpace(k)] = v
		}
		ss, err := loadgen.ParseSearch(fields)
		if err != nil {
			return fmt.Sprintf("--search: %v", err)
		}
		s.Search = &ss
	}
	if startAt != "" {
		t, err := time.Parse(time.RFC3339Nano, startAt)
		if err != nil {
			return fmt.Sprintf("--start-at %q: want an RFC 3339 time", startAt)
		}
		s.Start = t
	}
	if engine == loadgen.EngineFortio && (len(s.Mix) > 0 || s.Search != nil) {
		return "--engine fortio runs one stream at one rate: it cannot run --mix or --search"
	}
	return ""
}
