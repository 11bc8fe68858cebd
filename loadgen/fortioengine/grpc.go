package fortioengine

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"fortio.org/fortio/fgrpc"
	"fortio.org/fortio/fhttp"
	"fortio.org/fortio/periodic"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/meshbench/meshbench/loadgen"
)

// grpcCall is what fortio's gRPC runner calls in its health-check mode.
const grpcCall = "grpc.health.v1.Health/Check"

// grpcLoad runs gRPC load with fortio's own gRPC runner in its
// health-check mode (Service ""), one runner per target: its share of the
// connections (Connections i mod n go to target i), Streams threads on
// each connection as fortio puts them, and its share of the rate.
type grpcLoad struct {
	spec    *loadgen.Spec
	targets []string
	conns   []int // connections per target
	logs    []*logger
	md      metadata.MD
}

func newGRPCLoad(spec *loadgen.Spec, w *window) *grpcLoad {
	g := &grpcLoad{spec: spec, targets: spec.Targets}
	if len(g.targets) == 0 {
		g.targets = []string{spec.Target}
	}
	g.conns = make([]int, len(g.targets))
	for i := range spec.Connections {
		g.conns[i%len(g.targets)]++
	}
	for _, n := range g.conns {
		g.logs = append(g.logs, newLogger(w, n*spec.Streams, spec.Timeout, true))
	}
	for k, vv := range spec.Header {
		for _, v := range vv {
			g.md = metadata.Join(g.md, metadata.Pairs(strings.ToLower(k), v))
		}
	}
	if spec.Authority != "" {
		// fortio turns a "host" metadata entry into the :authority.
		g.md = metadata.Join(g.md, metadata.Pairs("host", spec.Authority))
	}
	return g
}

// destination is a target as fortio's gRPC dialer takes it: host:port,
// with https:// when loadgen would use TLS (an https:// or grpcs://
// target, or TLS options).
func (g *grpcLoad) destination(target string) string {
	s := g.spec
	host, useTLS := target, false
	if strings.Contains(target, "://") {
		if u, err := url.Parse(target); err == nil { // checked by Normalize
			host, useTLS = u.Host, u.Scheme == "https" || u.Scheme == "grpcs"
		}
	}
	if useTLS || s.TLS.CAFile != "" || s.TLS.CertFile != "" || s.TLS.Insecure {
		return "https://" + host
	}
	return host
}

// warm does nothing: fortio's gRPC runner makes one unrecorded call on
// every connection before it starts.
func (g *grpcLoad) warm() error { return nil }

// run runs one fortio gRPC runner per target at once, sharing ro's rate
// and request count by their connections.
func (g *grpcLoad) run(ctx context.Context, ro periodic.RunnerOptions) ([]periodic.RunnerResults, error) {
	s := g.spec
	results := make([]periodic.RunnerResults, len(g.targets))
	errs := make([]error, len(g.targets))
	var wg sync.WaitGroup
	var exactlyGiven int64
	for j, target := range g.targets {
		o := &fgrpc.GRPCRunnerOptions{
			RunnerOptions: ro,
			TLSOptions: fhttp.TLSOptions{
				Insecure: s.TLS.Insecure, CACert: s.TLS.CAFile, Cert: s.TLS.CertFile, Key: s.TLS.KeyFile,
			},
			Destination:  g.destination(target),
			Streams:      s.Streams,
			CertOverride: s.TLS.ServerName,
			Metadata:     g.md,
		}
		share := float64(g.conns[j]) / float64(s.Connections)
		o.NumThreads = g.conns[j] // fortio multiplies by Streams
		if ro.QPS > 0 {
			o.QPS = ro.QPS * share
		}
		if ro.Exactly > 0 {
			o.Exactly = int64(float64(ro.Exactly) * share)
			if j == len(g.targets)-1 {
				o.Exactly = ro.Exactly - exactlyGiven
			}
			exactlyGiven += o.Exactly
		}
		o.AccessLogger = g.logs[j]
		wg.Go(func() {
			var rr *fgrpc.GRPCRunnerResults
			runAborting(ctx, &o.RunnerOptions, func() { rr, errs[j] = fgrpc.RunGRPCTest(o) })
			if rr != nil {
				results[j] = rr.RunnerResults
			}
		})
	}
	wg.Wait()
	for j, err := range errs {
		if err != nil {
			return nil, g.explain(g.targets[j], err)
		}
	}
	return results, nil
}

// explain wraps an error of fortio's gRPC runner, which stops when the
// first call on a connection fails.
func (g *grpcLoad) explain(target string, err error) error {
	if status.Code(err) == codes.Unimplemented {
		return fmt.Errorf("fortio engine: protocol grpc: fortio's gRPC runner calls %s (or its own fgrpc.PingServer, or a method it finds by server reflection), and %s does not serve it (meshbench's backends serve grpc.testing.TestService only): %w: %w",
			grpcCall, target, err, ErrUnsupported)
	}
	return fmt.Errorf("fortio engine: protocol grpc: fortio's first %s call to %s failed, which stops its gRPC runner: %w", grpcCall, target, err)
}

// unimplemented reports whether every call of a measured run was refused
// as unimplemented: with a request count fortio skips its first calls, so
// a target without the health service shows only here.
func unimplemented(statuses map[string]int64, requests int64) bool {
	return requests > 0 && statuses[codes.Unimplemented.String()] == requests
}

func (g *grpcLoad) loggers() []*logger { return g.logs }

// close does nothing: fortio's gRPC runner keeps its connections to itself
// and does not close them.
func (g *grpcLoad) close() {}
