package conformance

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/meshbench/meshbench/proxy/identity"
)

// HeaderBackend names the backend in every HTTP response and in every
// gRPC response's header metadata.
const HeaderBackend = "X-Backend"

// BackendOptions configure a check's backend.
type BackendOptions struct {
	// Name is what the backend answers in HeaderBackend.
	Name string
	// TLS, when set, serves HTTPS (h2 or http/1.1 by ALPN) with it instead
	// of cleartext HTTP/1.1 and h2c.
	TLS *tls.Config
	// DropTrailers makes a broken backend: gRPC responses end without
	// their trailers (no grpc-status).
	DropTrailers bool
	// Behaviour is how it answers at first; Backend.Set changes it.
	Behaviour Behaviour
	// NativeGRPC also serves the TestService on a port of its own
	// (Backend.GRPCAddr) with grpc-go's own HTTP/2 transport, as gRPC
	// servers are deployed; Addr serves it through net/http's HTTP/2
	// server, beside HTTP/1.1 and h2c. With DropTrailers, GRPCAddr
	// serves the broken answers too.
	NativeGRPC bool
}

// Behaviour is how a backend answers the requests no handler of its own
// takes.
type Behaviour struct {
	// Status answers HTTP requests with this status (0: 200); gRPC calls
	// fail UNAVAILABLE when it is 503.
	Status int
	// Delay is waited before answering.
	Delay time.Duration
	// Reset closes the connection (HTTP/1.1) or resets the stream (HTTP/2)
	// without an answer.
	Reset bool
}

// Request is what a backend saw of one request.
type Request struct {
	Time       time.Time
	Proto      string // HTTP/1.1, HTTP/2.0
	Method     string
	Host       string
	Path       string
	Header     http.Header
	RemoteAddr string
	// GRPC is set for gRPC calls; Timeout is the grpc-timeout they carry
	// (0: none).
	GRPC    bool
	Timeout time.Duration
	// PeerID is the SPIFFE ID of the client certificate (TLS backends).
	PeerID string
}

// Backend is a real HTTP server on loopback that serves HTTP/1.1 and h2c
// (or h2 and HTTP/1.1 over TLS) and gRPC's interop TestService on one
// port, records every request and answers as its Behaviour says.
type Backend struct {
	// Name is the backend's name; Addr its host:port.
	Name, Addr string
	// GRPCAddr is the native gRPC port's host:port (NativeGRPC only).
	GRPCAddr string

	opts     BackendOptions
	beh      atomic.Pointer[Behaviour]
	mu       sync.Mutex
	reqs     []Request
	handlers map[string]http.HandlerFunc
	srv      *http.Server
	grpc     *grpc.Server
	native   *grpc.Server
	h2srv    *http.Server
	closed   atomic.Bool
}

// StartBackend starts a backend on a free loopback port; it stops when
// the check ends.
func (e *Env) StartBackend(o BackendOptions) (*Backend, error) {
	if e.sabotage != nil && e.sabotage.Backend != nil {
		e.sabotage.Backend(&o)
	}
	if o.Name == "" {
		o.Name = fmt.Sprintf("be-%d", e.n)
	}
	ln, err := e.listen()
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", o.Name, err)
	}
	b := &Backend{Name: o.Name, Addr: ln.Addr().String(), opts: o, handlers: map[string]http.HandlerFunc{}}
	b.beh.Store(&o.Behaviour)
	b.grpc = grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := b.grpcBehave(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := b.grpcBehave(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	)
	testgrpc.RegisterTestServiceServer(b.grpc, interop.NewTestServer())
	var protos http.Protocols
	protos.SetHTTP1(true)
	if o.TLS != nil {
		protos.SetHTTP2(true)
	} else {
		protos.SetUnencryptedHTTP2(true)
	}
	b.srv = &http.Server{Handler: http.HandlerFunc(b.serve), Protocols: &protos, TLSConfig: o.TLS, ReadHeaderTimeout: 10 * time.Second,
		// Refused handshakes are what the security checks provoke.
		ErrorLog: log.New(io.Discard, "", 0)}
	go func() {
		if o.TLS != nil {
			b.srv.ServeTLS(ln, "", "")
		} else {
			b.srv.Serve(ln)
		}
	}()
	e.Cleanup(b.Close)
	if o.NativeGRPC {
		if err := b.serveNative(e); err != nil {
			return nil, fmt.Errorf("backend %s: %w", o.Name, err)
		}
	}
	return b, nil
}

// serveNative starts the native gRPC port: grpc-go's transport, calls
// recorded by interceptors; or, with DropTrailers, the broken answers
// over net/http's h2c.
func (b *Backend) serveNative(e *Env) error {
	ln, err := e.listen()
	if err != nil {
		return err
	}
	b.GRPCAddr = ln.Addr().String()
	if b.opts.DropTrailers {
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		b.h2srv = &http.Server{Handler: http.HandlerFunc(b.serve), Protocols: &protos, ReadHeaderTimeout: 10 * time.Second}
		go b.h2srv.Serve(ln)
		return nil
	}
	b.native = grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			b.recordCall(ctx, info.FullMethod)
			if err := b.grpcBehave(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			b.recordCall(ss.Context(), info.FullMethod)
			if err := b.grpcBehave(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}),
		grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
			method, _ := grpc.MethodFromServerStream(ss)
			b.recordCall(ss.Context(), method)
			return status.Errorf(codes.Unimplemented, "unknown method %s", method)
		}),
	)
	testgrpc.RegisterTestServiceServer(b.native, interop.NewTestServer())
	go b.native.Serve(ln)
	return nil
}

// recordCall records a call on the native gRPC port as the HTTP handler
// records one: its metadata as headers (binary values in base64, as on
// the wire) and the deadline it arrived with as its timeout.
func (b *Backend) recordCall(ctx context.Context, method string) {
	seen := Request{Time: time.Now(), Proto: "HTTP/2.0", Method: http.MethodPost, Path: method, Header: http.Header{}, GRPC: true}
	md, _ := metadata.FromIncomingContext(ctx)
	for k, vs := range md {
		for _, v := range vs {
			if strings.HasSuffix(k, "-bin") {
				v = base64.RawStdEncoding.EncodeToString([]byte(v))
			}
			if k == ":authority" {
				seen.Host = v
				continue
			}
			seen.Header.Add(k, v)
		}
	}
	if d, ok := ctx.Deadline(); ok {
		seen.Timeout = time.Until(d)
	}
	if p, ok := peer.FromContext(ctx); ok {
		seen.RemoteAddr = p.Addr.String()
	}
	b.mu.Lock()
	b.reqs = append(b.reqs, seen)
	b.mu.Unlock()
}

// Handle serves path (exactly) with h instead of the Behaviour; the
// request is still recorded.
func (b *Backend) Handle(path string, h http.HandlerFunc) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.handlers[path] = h
}

// Set changes how the backend answers from now on.
func (b *Backend) Set(beh Behaviour) { b.beh.Store(&beh) }

// Requests returns what the backend has seen, oldest first.
func (b *Backend) Requests() []Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Request(nil), b.reqs...)
}

// Count is the number of requests seen.
func (b *Backend) Count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.reqs)
}

// Clear forgets the requests seen.
func (b *Backend) Clear() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reqs = nil
}

// Close stops the backend at once: its listener and every connection.
func (b *Backend) Close() {
	if b.closed.Swap(true) {
		return
	}
	b.srv.Close()
	b.grpc.Stop()
	if b.native != nil {
		b.native.Stop()
	}
	if b.h2srv != nil {
		b.h2srv.Close()
	}
}

func (b *Backend) serve(w http.ResponseWriter, r *http.Request) {
	isGRPC := r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
	seen := Request{Time: time.Now(), Proto: r.Proto, Method: r.Method, Host: r.Host, Path: r.URL.Path,
		Header: r.Header.Clone(), RemoteAddr: r.RemoteAddr, GRPC: isGRPC}
	if isGRPC {
		seen.Timeout = parseGRPCTimeout(r.Header.Get("Grpc-Timeout"))
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		if id, err := identity.CertificateID(r.TLS.PeerCertificates[0]); err == nil {
			seen.PeerID = id.String()
		}
	}
	b.mu.Lock()
	b.reqs = append(b.reqs, seen)
	h := b.handlers[r.URL.Path]
	b.mu.Unlock()

	if isGRPC {
		if b.opts.DropTrailers {
			dropTrailers(w)
			return
		}
		// The backend's name goes in the call's header metadata.
		b.grpc.ServeHTTP(w, r)
		return
	}
	w.Header().Set(HeaderBackend, b.Name)
	if h != nil {
		h(w, r)
		return
	}
	beh := *b.beh.Load()
	status := beh.Status
	if rest, ok := strings.CutPrefix(r.URL.Path, "/status/"); ok {
		if n, err := strconv.Atoi(rest); err == nil && n >= 200 && n < 600 {
			status = n
		}
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/delay/"); ok {
		if ms, err := strconv.Atoi(rest); err == nil {
			beh.Delay = time.Duration(ms) * time.Millisecond
		}
	}
	if beh.Delay > 0 {
		select {
		case <-time.After(beh.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if beh.Reset {
		panic(http.ErrAbortHandler)
	}
	io.Copy(io.Discard, r.Body)
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	io.WriteString(w, b.Name+"\n")
}

// grpcBehave applies the Behaviour to a gRPC call.
func (b *Backend) grpcBehave(ctx context.Context) error {
	grpc.SetHeader(ctx, metadata.Pairs(strings.ToLower(HeaderBackend), b.Name))
	beh := *b.beh.Load()
	if beh.Delay > 0 {
		select {
		case <-time.After(beh.Delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if beh.Reset {
		panic(http.ErrAbortHandler)
	}
	if beh.Status == http.StatusServiceUnavailable {
		return status.Errorf(codes.Unavailable, "backend %s: unavailable", b.Name)
	}
	return nil
}

// dropTrailers answers a gRPC call as a broken server would: headers and
// one empty message, then the end of the stream without trailers.
func dropTrailers(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/grpc")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte{0, 0, 0, 0, 0})
}

// parseGRPCTimeout parses a grpc-timeout header value ("250m").
func parseGRPCTimeout(v string) time.Duration {
	if len(v) < 2 {
		return 0
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil {
		return 0
	}
	unit := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second, 'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond}[v[len(v)-1]]
	return time.Duration(n) * unit
}
