package proxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// grpcService is a TestService whose behaviour the tests steer through
// metadata and request fields, and which reports what it observed.
type grpcService struct {
	testgrpc.UnimplementedTestServiceServer
	deadlines chan time.Duration // time left when a request arrived
	cancelled chan error         // context error of abandoned calls
}

func (s *grpcService) UnaryCall(ctx context.Context, in *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("x-echo"); len(v) > 0 {
		grpc.SetHeader(ctx, metadata.Pairs("x-echo-header", v[0]))
		grpc.SetTrailer(ctx, metadata.Pairs("x-echo-trailer", v[0]))
	}
	if dl, ok := ctx.Deadline(); ok {
		select {
		case s.deadlines <- time.Until(dl):
		default:
		}
	}
	if v := md.Get("x-sleep"); len(v) > 0 {
		d, _ := time.ParseDuration(v[0])
		select {
		case <-time.After(d):
		case <-ctx.Done():
			select {
			case s.cancelled <- ctx.Err():
			default:
			}
			return nil, ctx.Err()
		}
	}
	if st := in.GetResponseStatus(); st != nil {
		return nil, status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: make([]byte, in.GetResponseSize())}}, nil
}

func (s *grpcService) StreamingOutputCall(in *testgrpc.StreamingOutputCallRequest, stream testgrpc.TestService_StreamingOutputCallServer) error {
	for _, p := range in.GetResponseParameters() {
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
	}
	stream.SetTrailer(metadata.Pairs("x-sent", fmt.Sprint(len(in.GetResponseParameters()))))
	return nil
}

func (s *grpcService) StreamingInputCall(stream testgrpc.TestService_StreamingInputCallServer) error {
	total := 0
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&testgrpc.StreamingInputCallResponse{AggregatedPayloadSize: int32(total)})
		}
		if err != nil {
			return err
		}
		total += len(m.GetPayload().GetBody())
	}
}

func (s *grpcService) FullDuplexCall(stream testgrpc.TestService_FullDuplexCallServer) error {
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			select {
			case s.cancelled <- stream.Context().Err():
			default:
			}
			return err
		}
		if st := m.GetResponseStatus(); st != nil {
			return status.Error(codes.Code(st.GetCode()), st.GetMessage())
		}
		size := int32(0)
		if ps := m.GetResponseParameters(); len(ps) > 0 {
			size = ps[0].GetSize()
		}
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, size)}}); err != nil {
			return err
		}
	}
}

func startGRPCBackend(t testing.TB) (*grpcService, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := &grpcService{deadlines: make(chan time.Duration, 16), cancelled: make(chan error, 16)}
	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, svc)
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	return svc, ln.Addr().String()
}

func dialGRPC(t testing.TB, addr, tlsDir string) testgrpc.TestServiceClient {
	t.Helper()
	creds := insecure.NewCredentials()
	if tlsDir != "" {
		pem, err := os.ReadFile(filepath.Join(tlsDir, "cert.pem"))
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		creds = credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "localhost"})
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return testgrpc.NewTestServiceClient(cc)
}

func TestGRPCThroughProxy(t *testing.T) {
	svc, addr := startGRPCBackend(t)
	tlsDir := selfSigned(t)
	plain := startProxy(t, simpleConfig("auto", "", "same", addr))
	secure := startProxy(t, simpleConfig("h2", tlsDir, "same", addr))
	for _, lt := range []struct{ name, addr, tls string }{
		{"h2c", plain.Addr("out").String(), ""},
		{"tls", secure.Addr("out").String(), tlsDir},
	} {
		c := dialGRPC(t, lt.addr, lt.tls)
		t.Run(lt.name+"/unary-with-metadata", func(t *testing.T) {
			ctx := metadata.AppendToOutgoingContext(context.Background(), "x-echo", "m1")
			var hdr, trl metadata.MD
			resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 100_000, Payload: &testgrpc.Payload{Body: make([]byte, 50_000)}},
				grpc.Header(&hdr), grpc.Trailer(&trl))
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.GetPayload().GetBody()) != 100_000 {
				t.Errorf("payload %d bytes", len(resp.GetPayload().GetBody()))
			}
			if got := hdr.Get("x-echo-header"); len(got) != 1 || got[0] != "m1" {
				t.Errorf("header metadata = %v", hdr)
			}
			if got := trl.Get("x-echo-trailer"); len(got) != 1 || got[0] != "m1" {
				t.Errorf("trailer metadata = %v", trl)
			}
		})
		t.Run(lt.name+"/status-codes", func(t *testing.T) {
			for _, code := range []codes.Code{codes.NotFound, codes.PermissionDenied, codes.Internal, codes.Unavailable} {
				msg := fmt.Sprintf("failed with %v: ünïcode\t and %%", code)
				_, err := c.UnaryCall(context.Background(), &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(code), Message: msg}})
				if st := status.Convert(err); st.Code() != code || st.Message() != msg {
					t.Errorf("got %v %q, want %v %q", st.Code(), st.Message(), code, msg)
				}
			}
		})
		t.Run(lt.name+"/server-streaming", func(t *testing.T) {
			var params []*testgrpc.ResponseParameters
			for i := range 20 {
				params = append(params, &testgrpc.ResponseParameters{Size: int32(1000 * (i + 1))})
			}
			st, err := c.StreamingOutputCall(context.Background(), &testgrpc.StreamingOutputCallRequest{ResponseParameters: params})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; ; i++ {
				m, err := st.Recv()
				if err == io.EOF {
					if i != 20 {
						t.Errorf("got %d messages, want 20", i)
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(m.GetPayload().GetBody()) != 1000*(i+1) {
					t.Errorf("message %d has %d bytes", i, len(m.GetPayload().GetBody()))
				}
			}
			if got := st.Trailer().Get("x-sent"); len(got) != 1 || got[0] != "20" {
				t.Errorf("trailer = %v", st.Trailer())
			}
		})
		t.Run(lt.name+"/client-streaming", func(t *testing.T) {
			st, err := c.StreamingInputCall(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			for i := range 30 {
				want += i * 100
				if err := st.Send(&testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, i*100)}}); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := st.CloseAndRecv()
			if err != nil {
				t.Fatal(err)
			}
			if int(resp.GetAggregatedPayloadSize()) != want {
				t.Errorf("aggregated %d, want %d", resp.GetAggregatedPayloadSize(), want)
			}
		})
		t.Run(lt.name+"/bidi-ping-pong", func(t *testing.T) {
			st, err := c.FullDuplexCall(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				if err := st.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: int32(i + 1)}}}); err != nil {
					t.Fatal(err)
				}
				m, err := st.Recv() // the reply arrives before the next request is sent
				if err != nil {
					t.Fatal(err)
				}
				if len(m.GetPayload().GetBody()) != i+1 {
					t.Errorf("reply %d has %d bytes", i, len(m.GetPayload().GetBody()))
				}
			}
			st.CloseSend()
			if _, err := st.Recv(); err != io.EOF {
				t.Errorf("end of stream: %v", err)
			}
		})
		t.Run(lt.name+"/bidi-error-status", func(t *testing.T) {
			st, err := c.FullDuplexCall(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			st.Send(&testgrpc.StreamingOutputCallRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.Aborted), Message: "stop"}})
			if _, err := st.Recv(); status.Code(err) != codes.Aborted {
				t.Errorf("got %v, want Aborted", err)
			}
		})
		t.Run(lt.name+"/deadline", func(t *testing.T) {
			drain(svc.deadlines)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, "x-sleep", "5s")
			start := time.Now()
			_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
			if status.Code(err) != codes.DeadlineExceeded {
				t.Errorf("got %v, want DeadlineExceeded", err)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("deadline of 300ms took %v", el)
			}
			select {
			case left := <-svc.deadlines:
				if left <= 0 || left > 300*time.Millisecond {
					t.Errorf("upstream saw %v left, want within (0, 300ms]", left)
				}
			case <-time.After(2 * time.Second):
				t.Error("upstream saw no deadline")
			}
			// The upstream call ends too; wait for it, so that its end is
			// not taken for the next subtest's.
			select {
			case <-svc.cancelled:
			case <-time.After(5 * time.Second):
				t.Error("the upstream call outlived its deadline")
			}
		})
		t.Run(lt.name+"/cancellation", func(t *testing.T) {
			drain(svc.cancelled)
			ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "x-sleep", "10s"))
			go func() { time.Sleep(200 * time.Millisecond); cancel() }()
			_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
			if status.Code(err) != codes.Canceled {
				t.Errorf("got %v, want Canceled", err)
			}
			select {
			case err := <-svc.cancelled:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("upstream context ended with %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("cancellation did not reach the upstream")
			}
		})
	}
}

func drain[T any](c chan T) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// TestGRPCProxyErrors checks that failures the proxy produces itself reach
// gRPC clients as trailers-only responses with the right status.
func TestGRPCProxyErrors(t *testing.T) {
	_, addr := startGRPCBackend(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	srv := startProxy(t, fmt.Sprintf(`listeners:
- name: out
  address: 127.0.0.1:0
  routes:
  - {match: {grpc_service: grpc.testing.TestService, grpc_method: EmptyCall}, cluster: refused}
  - {match: {grpc_service: grpc.testing.TestService}, cluster: ok, timeout: 250ms}
clusters:
- {name: refused, endpoints: [%s]}
- {name: ok, endpoints: [%s]}
`, closed, addr))
	c := dialGRPC(t, srv.Addr("out").String(), "")
	if _, err := c.EmptyCall(context.Background(), &testgrpc.Empty{}); status.Code(err) != codes.Unavailable {
		t.Errorf("refused upstream: %v, want Unavailable", err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-sleep", "5s")
	if _, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("route timeout: %v, want DeadlineExceeded", err)
	}
	un := testgrpc.NewUnimplementedServiceClient(dialGRPCConn(t, srv.Addr("out").String()))
	if _, err := un.UnimplementedCall(context.Background(), &testgrpc.Empty{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("no route: %v, want Unimplemented", err)
	}
	if n := counterValue(t, srv, "response_total", map[string]string{"grpc_status": "12", "route": ""}); n != 1 {
		t.Errorf("UNIMPLEMENTED responses counted: %v", n)
	}
	if n := counterValue(t, srv, "response_total", map[string]string{"grpc_status": "14", "classification": "failure"}); n != 1 {
		t.Errorf("UNAVAILABLE failures counted: %v", n)
	}
}

func dialGRPCConn(t testing.TB, addr string) *grpc.ClientConn {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}
