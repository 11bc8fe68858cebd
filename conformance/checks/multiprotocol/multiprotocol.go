package multiprotocol

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/conformance/checks/grpccheck"
	"github.com/meshbench/meshbench/peers"
	"github.com/meshbench/meshbench/proxy/config"
)

const (
	// runFor is how long the clients send.
	runFor = 1500 * time.Millisecond
	// workers is the number of goroutines per protocol.
	workers = 2
	// pace is the least time between the starts of two requests of one
	// goroutine, so that both protocols share the whole run.
	pace = 4 * time.Millisecond
	// maxPerWorker bounds the requests one goroutine sends.
	maxPerWorker = 400
	// requestTimeout bounds one request.
	requestTimeout = 5 * time.Second
	// messageSize is the size of each gRPC request and response payload.
	messageSize = 64
	// shownErrors is how many distinct errors a failure names.
	shownErrors = 3
	// httpPath is the path of the plain HTTP requests.
	httpPath = "/multiprotocol/get"
)

// Checks returns the profile's checks.
func Checks() []conformance.Check {
	return []conformance.Check{
		{
			ID:    "multiprotocol/http1-and-grpc",
			Title: "HTTP/1.1 and gRPC at once on one listener and one cluster",
			Asserts: fmt.Sprintf("On one listener (protocol auto) routing to one cluster (protocol same) of two backends that serve HTTP/1.1 and gRPC on one port, %d goroutines sending HTTP/1.1 GETs and %d sending gRPC unary calls for %v (at most %d requests each) all succeed, "+
				"and the backends see every GET as HTTP/1.1 and every gRPC call as gRPC over HTTP/2, each exactly once (figures: requests per protocol, errors). "+
				"A sidecar carries whatever its workload speaks to a service whose pods serve REST and gRPC on one port, so it must pick the upstream protocol per request.", workers, workers, runFor, maxPerWorker),
			Run: func(e *conformance.Env) error { return mixed(e, peers.TrafficHTTP1) },
		},
		{
			ID:    "multiprotocol/h2c-and-grpc",
			Title: "h2c and gRPC at once on one listener and one cluster",
			Asserts: fmt.Sprintf("On one listener (protocol auto) routing to one cluster (protocol h2c) of two backends that serve h2c and gRPC on one port, %d goroutines sending plain GETs over h2c (prior knowledge) and %d sending gRPC unary calls for %v (at most %d requests each) all succeed, "+
				"and the backends see every GET as a plain HTTP/2 request and every gRPC call as gRPC over HTTP/2, each exactly once (figures: requests per protocol, errors). "+
				"HTTP/2 carries both plain requests and gRPC between mesh workloads; a proxy must not treat every HTTP/2 request as gRPC or the other way round.", workers, workers, runFor, maxPerWorker),
			Run: func(e *conformance.Env) error { return mixed(e, peers.TrafficH2C) },
		},
	}
}

// tally counts one protocol's requests and keeps its first errors.
type tally struct {
	mu     sync.Mutex
	ok     int
	failed int
	errs   []string
}

func (t *tally) add(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil {
		t.ok++
		return
	}
	t.failed++
	if msg := strings.Join(strings.Fields(err.Error()), " "); len(t.errs) < shownErrors && !slices.Contains(t.errs, msg) {
		t.errs = append(t.errs, msg)
	}
}

// mixed runs plain HTTP requests (HTTP/1.1 or h2c, as traffic says) and
// gRPC calls at once through one listener and one cluster.
func mixed(e *conformance.Env, traffic string) error {
	var backends []*conformance.Backend
	var endpoints []string
	for i := range 2 {
		be, err := e.StartBackend(conformance.BackendOptions{Name: fmt.Sprintf("mp-be-%d", i)})
		if err != nil {
			return err
		}
		backends = append(backends, be)
		endpoints = append(endpoints, be.Addr)
	}
	listen, err := e.Addr()
	if err != nil {
		return err
	}
	httpName, figure, wantProto, protocol := "HTTP/1.1", "http1_requests", "HTTP/1.1", config.UpstreamSame
	var protos http.Protocols
	if traffic == peers.TrafficH2C {
		httpName, figure, wantProto, protocol = "h2c", "h2c_requests", "HTTP/2.0", config.UpstreamH2C
		protos.SetUnencryptedHTTP2(true)
	} else {
		protos.SetHTTP1(true)
	}
	cfg := conformance.Forward(listen, config.ProtoAuto, 10*time.Second, config.Cluster{Protocol: protocol, Endpoints: endpoints})
	if _, err := e.StartProxy(cfg, traffic, peers.TrafficGRPC); err != nil {
		return err
	}
	tr := &http.Transport{Protocols: &protos, MaxIdleConnsPerHost: workers}
	e.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: requestTimeout}
	conn, err := grpccheck.Dial(listen, grpccheck.Authority)
	if err != nil {
		return err
	}
	e.Cleanup(func() { conn.Close() })
	tc := testgrpc.NewTestServiceClient(conn)

	names := map[string]bool{}
	for _, be := range backends {
		names[be.Name] = true
	}
	ctx, cancel := context.WithTimeout(e.Context(), runFor)
	defer cancel()
	var plain, rpc tally
	var wg sync.WaitGroup
	for range workers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			paced(ctx, func() { plain.add(getOnce(e.Context(), hc, "http://"+listen+httpPath, wantProto, names)) })
		}()
		go func() {
			defer wg.Done()
			paced(ctx, func() { rpc.add(callOnce(e.Context(), tc)) })
		}()
	}
	wg.Wait()

	e.Figure(figure, float64(plain.ok+plain.failed), "")
	e.Figure("grpc_requests", float64(rpc.ok+rpc.failed), "")
	e.Figure("errors", float64(plain.failed+rpc.failed), "")

	var problems []string
	if plain.failed > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d %s GETs failed (%s)", plain.failed, plain.ok+plain.failed, httpName, strings.Join(plain.errs, "; ")))
	}
	if rpc.failed > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d gRPC calls failed (%s)", rpc.failed, rpc.ok+rpc.failed, strings.Join(rpc.errs, "; ")))
	}
	if plain.ok+plain.failed == 0 || rpc.ok+rpc.failed == 0 {
		problems = append(problems, fmt.Sprintf("sent %d %s GETs and %d gRPC calls in %v, want some of each", plain.ok+plain.failed, httpName, rpc.ok+rpc.failed, runFor))
	}
	// What the backends saw: each request once, in its protocol.
	seenPlain, seenRPC := 0, 0
	wrong := map[string]int{}
	var order []string
	note := func(msg string) {
		if wrong[msg] == 0 {
			order = append(order, msg)
		}
		wrong[msg]++
	}
	for _, be := range backends {
		for _, r := range be.Requests() {
			switch {
			case r.Path == httpPath:
				seenPlain++
				if r.Proto != wantProto || r.GRPC {
					note(fmt.Sprintf("%s GETs reached %s as %s (gRPC %v), want %s", httpName, be.Name, r.Proto, r.GRPC, wantProto))
				}
			case r.Path == "/grpc.testing.TestService/UnaryCall":
				seenRPC++
				if r.Proto != "HTTP/2.0" || !r.GRPC {
					note(fmt.Sprintf("gRPC calls reached %s as %s with content-type %q, want gRPC over HTTP/2.0", be.Name, r.Proto, r.Header.Get("Content-Type")))
				}
			default:
				note(fmt.Sprintf("%s %s requests for %s reached %s, which nobody sent", r.Proto, r.Method, r.Path, be.Name))
			}
		}
	}
	for _, msg := range order {
		problems = append(problems, fmt.Sprintf("%d %s", wrong[msg], msg))
	}
	if len(wrong) == 0 && plain.failed == 0 && rpc.failed == 0 {
		if seenPlain != plain.ok {
			problems = append(problems, fmt.Sprintf("the backends saw %d %s GETs, the client sent %d", seenPlain, httpName, plain.ok))
		}
		if seenRPC != rpc.ok {
			problems = append(problems, fmt.Sprintf("the backends saw %d gRPC calls, the client sent %d", seenRPC, rpc.ok))
		}
	}
	return conformance.Problems(problems)
}

// paced calls f until ctx ends or maxPerWorker times, starting calls at
// most once per pace.
func paced(ctx context.Context, f func()) {
	t := time.NewTicker(pace)
	defer t.Stop()
	for range maxPerWorker {
		f()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// getOnce sends one GET and checks its answer: 200 over wantProto from
// one of the backends.
func getOnce(ctx context.Context, c *http.Client, url, wantProto string, names map[string]bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch name := strings.TrimSpace(string(body)); {
	case err != nil:
		return fmt.Errorf("reading the body: %w", err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("GET answered %s", resp.Status)
	case resp.Proto != wantProto:
		return fmt.Errorf("GET answered over %s, want %s", resp.Proto, wantProto)
	case !names[name] || resp.Header.Get(conformance.HeaderBackend) != name:
		return fmt.Errorf("GET answered with body %q and %s %q: not a backend's answer", body, conformance.HeaderBackend, resp.Header.Get(conformance.HeaderBackend))
	}
	return nil
}

// callOnce makes one unary call and checks its response's size.
func callOnce(ctx context.Context, tc testgrpc.TestServiceClient) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseType: testpb.PayloadType_COMPRESSABLE, ResponseSize: messageSize,
		Payload: &testpb.Payload{Type: testpb.PayloadType_COMPRESSABLE, Body: make([]byte, messageSize)}})
	if err != nil {
		return fmt.Errorf("UnaryCall: %w", err)
	}
	if n := len(resp.GetPayload().GetBody()); n != messageSize {
		return fmt.Errorf("UnaryCall: a %d-byte response payload, want %d", n, messageSize)
	}
	return nil
}
