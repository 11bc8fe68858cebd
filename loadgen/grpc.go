package loadgen

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// newGRPCClients opens Connections client connections to a grpc.testing
// TestService, connection i to the spec's target i mod n, and puts Streams
// workers on each.
func newGRPCClients(_ context.Context, s *Spec, tlsConf *tls.Config) ([]client, func(), error) {
	var md metadata.MD
	for k, vv := range s.Header {
		for _, v := range vv {
			md = metadata.Join(md, metadata.Pairs(strings.ToLower(k), v))
		}
	}
	req := &testgrpc.SimpleRequest{ResponseSize: int32(s.ResponseSize), Payload: &testgrpc.Payload{Body: make([]byte, s.BodySize)}}
	sreq := &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: int32(s.ResponseSize)}}, Payload: req.Payload}
	var clients []client
	var conns []*grpc.ClientConn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for i := range s.Connections {
		target, opts := grpcDialTarget(s, s.target(i), tlsConf)
		cc, err := grpc.NewClient("passthrough:///"+target, opts...)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("creating gRPC client for %s: %w", target, err)
		}
		conns = append(conns, cc)
		tc := testgrpc.NewTestServiceClient(cc)
		for range s.Streams {
			clients = append(clients, &grpcWorker{tc: tc, md: md, req: req, sreq: sreq, stream: s.GRPCMode == GRPCStream, timeout: s.Timeout})
		}
	}
	return clients, closeAll, nil
}

// grpcDialTarget returns the host:port of a gRPC target and the dial
// options for it: TLS for an https:// or grpcs:// target, or when TLS
// options are set.
func grpcDialTarget(s *Spec, target string, tlsConf *tls.Config) (string, []grpc.DialOption) {
	useTLS := false
	if strings.Contains(target, "://") {
		u, _ := url.Parse(target) // checked by normalize
		target, useTLS = u.Host, u.Scheme == "https" || u.Scheme == "grpcs"
	}
	useTLS = useTLS || s.TLS.CAFile != "" || s.TLS.CertFile != "" || s.TLS.Insecure
	creds := insecure.NewCredentials()
	if useTLS {
		creds = credentials.NewTLS(tlsConf)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if s.Authority != "" {
		opts = append(opts, grpc.WithAuthority(s.Authority))
	}
	return target, opts
}

type grpcWorker struct {
	tc      testgrpc.TestServiceClient
	md      metadata.MD
	req     *testgrpc.SimpleRequest
	sreq    *testgrpc.StreamingOutputCallRequest
	stream  bool
	timeout time.Duration
	st      testgrpc.TestService_FullDuplexCallClient
	hdr     string
}

func (w *grpcWorker) do(ctx context.Context) outcome {
	if w.md != nil {
		ctx = metadata.NewOutgoingContext(ctx, w.md)
	}
	if w.stream {
		return w.roundTrip(ctx)
	}
	var hdr metadata.MD
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	_, err := w.tc.UnaryCall(ctx, w.req, grpc.Header(&hdr))
	o := outcome{status: status.Code(err).String()}
	if v := hdr.Get("x-backend"); len(v) > 0 {
		o.backend = v[0]
	}
	if err != nil {
		o.errClass = grpcClass(err)
	}
	return o
}

// roundTrip sends one message on the worker's long-lived stream and waits
// for its reply, opening the stream first if needed.
func (w *grpcWorker) roundTrip(ctx context.Context) outcome {
	if w.st == nil {
		st, err := w.tc.FullDuplexCall(ctx)
		if err != nil {
			return outcome{errClass: grpcClass(err)}
		}
		w.st = st
		w.hdr = ""
	}
	if err := w.st.Send(w.sreq); err != nil {
		_, err = w.st.Recv() // the stream's real status
		w.st = nil
		return outcome{errClass: grpcClass(err), status: status.Code(err).String()}
	}
	if _, err := w.st.Recv(); err != nil {
		w.st = nil
		return outcome{errClass: grpcClass(err), status: status.Code(err).String()}
	}
	if w.hdr == "" { // the header has arrived with the first reply
		if hdr, err := w.st.Header(); err == nil {
			if v := hdr.Get("x-backend"); len(v) > 0 {
				w.hdr = v[0]
			}
		}
	}
	return outcome{backend: w.hdr, status: "OK"}
}

func grpcClass(err error) string {
	st := status.Convert(err)
	if st.Code() == codes.OK {
		return "grpc_Unknown"
	}
	return "grpc_" + st.Code().String()
}
