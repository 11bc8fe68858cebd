package grpccheck

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/peers"
	"github.com/meshbench/meshbench/proxy/config"
)

const (
	// Authority is the :authority every check's client sends.
	Authority = "grpc.meshbench.test"
	// callTimeout bounds one call (or one stream) of a check.
	callTimeout = 5 * time.Second
	// routeTimeout is the route timeout of the checks' configuration,
	// longer than any call's deadline.
	routeTimeout = 10 * time.Second
)

// Checks returns the profile's checks.
func Checks() []conformance.Check {
	return []conformance.Check{
		{
			ID:    "grpc/unary",
			Title: "Unary gRPC calls forwarded and answered",
			Asserts: "Three rounds of EmptyCall and UnaryCall (a 271828-byte request asking for a 314159-byte response) of grpc-go's interop TestService, on one HTTP/2 connection, each answer with OK, the response size asked for and the backend's x-backend header metadata; " +
				"the backend sees each call as gRPC over HTTP/2 on its method's path. Unary calls are most of a mesh's gRPC traffic.",
			Run: unary,
		},
		{
			ID:    "grpc/server-streaming",
			Title: "Server-streaming gRPC call streamed to the client",
			Asserts: fmt.Sprintf("A StreamingOutputCall asking for four responses of 31415, 9, 2653 and 58979 bytes, the last three each %v after the one before, delivers all four in order with those sizes and then OK, "+
				"and the first arrives at least %v before the last (a proxy that holds the stream until it ends delivers them together). "+
				"Server streams carry watches and feeds that must reach the client as the server sends them.", streamInterval, minStreamSpread),
			Run: serverStreaming,
		},
		{
			ID:    "grpc/client-streaming",
			Title: "Client-streaming gRPC call forwarded",
			Asserts: "A StreamingInputCall sending four messages of 27182, 8, 1828 and 45904 bytes is answered with OK and an aggregated payload size of 74922 (every byte reached the backend), " +
				"with the backend's x-backend header metadata. Client streams carry uploads and batched reports.",
			Run: clientStreaming,
		},
		{
			ID:    "grpc/bidi-streaming",
			Title: "Bidirectional gRPC stream in ping-pong",
			Asserts: "A FullDuplexCall exchanges four request/response pairs in ping-pong (each request, of 27182, 8, 1828 and 45904 bytes, is sent only after the previous response of 31415, 9, 2653 and 58979 bytes arrived, within " + callTimeout.String() + " in all), then the client half-closes and the call ends OK. " +
				"Only a proxy that streams both directions at once lets such a conversation progress; bidirectional streams carry a mesh's long-lived sessions.",
			Run: bidiStreaming,
		},
		{
			ID:    "grpc/status-and-trailers",
			Title: "gRPC status, message and trailing metadata come back",
			Asserts: "A UnaryCall the backend fails with FAILED_PRECONDITION and a message holding spaces, a tab and non-ASCII text comes back with that code and exactly that message and the x-grpc-test-echo-trailing-bin trailer the backend echoed (a trailers-only response); " +
				"a successful UnaryCall comes back with the echoed trailer; and a FullDuplexCall that gets one response and then ends with that status returns the status and the trailer after its data. " +
				"gRPC's status travels in HTTP/2 trailers: a proxy that loses them turns every call into INTERNAL, and clients' retries and error handling depend on the code.",
			Run: statusAndTrailers,
		},
		{
			ID:    "grpc/deadline-propagation",
			Title: "gRPC deadline propagated and enforced",
			Asserts: fmt.Sprintf("An EmptyCall with a %v deadline reaches the backend with a grpc-timeout no larger than %v and no smaller than %v less the time from the call's start to the backend's receipt, less %v; "+
				"and a call with a %v deadline to a backend that waits %v ends DEADLINE_EXCEEDED at the client no later than %v after its start, having reached the backend with a grpc-timeout no larger than %v. "+
				"Deadlines must shrink along a call's path, never grow, so that every hop stops working on a call its client has given up on.",
				propDeadline, propDeadline, propDeadline, propSlack, slowDeadline, slowDelay, slowDeadline+slowBound, slowDeadline),
			Run: deadlinePropagation,
		},
		{
			ID:    "grpc/metadata",
			Title: "Custom gRPC metadata carried both ways",
			Asserts: "A UnaryCall with the request metadata x-meshbench-md (text) and x-meshbench-md-bin (binary) reaches the backend with both values intact, " +
				"and the initial metadata the backend echoes (x-grpc-test-echo-initial) and sets (x-backend) comes back in the response headers, for that call and for a FullDuplexCall. " +
				"Meshes and applications carry tenant, tracing and auth context in metadata.",
			Run: metadataCheck,
		},
		{
			ID:    "grpc/interop",
			Title: "grpc-go interop client cases through the proxy",
			Asserts: fmt.Sprintf("grpc-go's interop client cases (google.golang.org/grpc/interop, v1.85.0) %s all pass against its TestService behind the proxy (figures: cases, passed, retried). "+
				"They run in a child process, each bounded to %v, since a failing case ends its process. They are the common test of gRPC implementations and proxies. "+
				"%s alone is run a second time when it fails: its 1 ms deadline races a proxy's answer to the server's reset on a busy machine, and only a second failure counts.", caseList(), caseTimeout, racyCase),
			Run: interopCheck,
		},
	}
}

// sidecar is the configuration the checks run: one listener serving
// HTTP/1.1 and h2c, every call to cluster "grpc" of protocol h2c.
func sidecar(listen string, endpoints ...string) *config.Config {
	return conformance.Forward(listen, config.ProtoAuto, routeTimeout, config.Cluster{Protocol: config.UpstreamH2C, Endpoints: endpoints})
}

// setup starts a backend and the proxy in front of it and returns the
// backend, the proxy's listen address and a client connected to it.
func setup(e *conformance.Env) (*conformance.Backend, string, *grpc.ClientConn, error) {
	be, err := e.StartBackend(conformance.BackendOptions{Name: "grpc-be", NativeGRPC: true})
	if err != nil {
		return nil, "", nil, err
	}
	listen, err := e.Addr()
	if err != nil {
		return nil, "", nil, err
	}
	if _, err := e.StartProxy(sidecar(listen, be.GRPCAddr), peers.TrafficGRPC); err != nil {
		return nil, "", nil, err
	}
	conn, err := Dial(listen, Authority)
	if err != nil {
		return nil, "", nil, err
	}
	e.Cleanup(func() { conn.Close() })
	return be, listen, conn, nil
}

// Dial returns a gRPC client connection to addr in cleartext (h2c) that
// sends authority as :authority.
func Dial(addr, authority string) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(authority))
	if err != nil {
		return nil, fmt.Errorf("gRPC client for %s: %w", addr, err)
	}
	return conn, nil
}

// call returns a context for one call, bounded by callTimeout.
func call(e *conformance.Env) (context.Context, context.CancelFunc) {
	return context.WithTimeout(e.Context(), callTimeout)
}

// checkBackendHeader checks that header metadata names the backend (the
// backend sets it both as an HTTP header and as gRPC header metadata, so
// it may hold the name more than once).
func checkBackendHeader(what string, md metadata.MD, be *conformance.Backend) error {
	got := md.Get(conformance.HeaderBackend)
	ok := len(got) > 0
	for _, v := range got {
		ok = ok && v == be.Name
	}
	if !ok {
		return fmt.Errorf("%s: header metadata %s = %q, want %q: the backend's response headers did not come back", what, conformance.HeaderBackend, got, be.Name)
	}
	return nil
}

// checkSeen checks that the backend saw n gRPC calls over HTTP/2 on path.
func checkSeen(be *conformance.Backend, path string, n int) error {
	got := 0
	for _, r := range be.Requests() {
		if r.Path != path {
			continue
		}
		if !r.GRPC || r.Proto != "HTTP/2.0" {
			return fmt.Errorf("the backend saw %s over %s with content-type %q, want a gRPC call over HTTP/2", path, r.Proto, r.Header.Get("Content-Type"))
		}
		got++
	}
	if got != n {
		return fmt.Errorf("the backend saw %d calls to %s, want %d", got, path, n)
	}
	return nil
}

// testService is the client of the interop TestService on conn.
func testService(conn *grpc.ClientConn) testgrpc.TestServiceClient {
	return testgrpc.NewTestServiceClient(conn)
}

// contextWithTimeout returns a context for a call with deadline d.
func contextWithTimeout(e *conformance.Env, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(e.Context(), d)
}
