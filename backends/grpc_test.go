package backends_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/meshbench/meshbench/backends"
)

func grpcClient(t *testing.T, b *backends.Backend) testgrpc.TestServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(b.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	return testgrpc.NewTestServiceClient(cc)
}

func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestGRPCUnary(t *testing.T) {
	b := start(t, backends.Config{Name: "g-1", GRPCAddr: "127.0.0.1:0", ResponseSize: 33})
	c := grpcClient(t, b)
	ctx := callCtx(t)

	for _, tc := range []struct {
		ask, want int32
	}{{0, 33}, {1000, 1000}} {
		var md metadata.MD
		resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: tc.ask}, grpc.Header(&md))
		if err != nil {
			t.Fatalf("UnaryCall: %v", err)
		}
		if got := len(resp.GetPayload().GetBody()); got != int(tc.want) {
			t.Errorf("response_size %d: payload %d bytes, want %d", tc.ask, got, tc.want)
		}
		if got := md.Get("x-backend"); len(got) != 1 || got[0] != "g-1" {
			t.Errorf("x-backend metadata = %q, want [g-1]", got)
		}
	}
	if _, err := c.EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
		t.Errorf("EmptyCall: %v", err)
	}
	_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.NotFound), Message: "asked for"}})
	if s := status.Convert(err); s.Code() != codes.NotFound || s.Message() != "asked for" {
		t.Errorf("echoed status = %v", err)
	}
	_, err = c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: -1})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("negative response_size: %v, want InvalidArgument", err)
	}
}

func TestGRPCDelay(t *testing.T) {
	b := start(t, backends.Config{GRPCAddr: "127.0.0.1:0", Latency: "fixed:20ms"})
	c := grpcClient(t, b)
	ctx := callCtx(t)
	if _, err := c.EmptyCall(ctx, &testgrpc.Empty{}); err != nil { // connect
		t.Fatal(err)
	}
	t0 := time.Now()
	if _, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(t0); el < 20*time.Millisecond || el > 200*time.Millisecond {
		t.Errorf("fixed:20ms call took %s", el)
	}
	// Three streamed messages, each with its own delay.
	t0 = time.Now()
	st, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{
		ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1}, {Size: 2}, {Size: 3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := st.Recv(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(t0); el < 60*time.Millisecond || el > 400*time.Millisecond {
		t.Errorf("three messages at fixed:20ms took %s, want >= 60ms", el)
	}
}

func TestGRPCStreaming(t *testing.T) {
	b := start(t, backends.Config{Name: "g-2", GRPCAddr: "127.0.0.1:0", ResponseSize: 5})
	c := grpcClient(t, b)
	ctx := callCtx(t)

	// Server streaming.
	st, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{
		ResponseParameters: []*testgrpc.ResponseParameters{{Size: 10}, {Size: 0}, {Size: 30, IntervalUs: 1000}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("StreamingOutputCall: %v", err)
		}
		sizes = append(sizes, len(r.GetPayload().GetBody()))
	}
	if len(sizes) != 3 || sizes[0] != 10 || sizes[1] != 5 || sizes[2] != 30 {
		t.Errorf("streamed sizes %v, want [10 5 30]", sizes)
	}
	if md, err := st.Header(); err != nil || len(md.Get("x-backend")) != 1 || md.Get("x-backend")[0] != "g-2" {
		t.Errorf("stream header %v %v", md, err)
	}

	// Client streaming.
	in, err := c.StreamingInputCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{3, 4, 5} {
		if err := in.Send(&testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, n)}}); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := in.CloseAndRecv(); err != nil || r.GetAggregatedPayloadSize() != 12 {
		t.Errorf("StreamingInputCall: %v %v, want 12", r, err)
	}

	// Bidi ping-pong.
	fd, err := c.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		size := int32(100 * (i + 1))
		if err := fd.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: size}}}); err != nil {
			t.Fatal(err)
		}
		r, err := fd.Recv()
		if err != nil {
			t.Fatalf("FullDuplexCall recv %d: %v", i, err)
		}
		if got := len(r.GetPayload().GetBody()); got != int(size) {
			t.Errorf("ping %d: %d bytes, want %d", i, got, size)
		}
	}
	if err := fd.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := fd.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("after CloseSend: %v, want EOF", err)
	}
}

func TestGRPCErrorRate(t *testing.T) {
	b := start(t, backends.Config{GRPCAddr: "127.0.0.1:0", ErrorRate: 0.3, Seed: 7})
	c := grpcClient(t, b)
	ctx := callCtx(t)
	const n = 2000 // ±0.05 is 4.9 standard errors of the share
	failed := 0
	for range n {
		_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		switch status.Code(err) {
		case codes.OK:
		case codes.Unavailable:
			failed++
		default:
			t.Fatalf("UnaryCall: %v", err)
		}
	}
	near(t, "share of UNAVAILABLE", float64(failed)/n, 0.3, 0.05)

	// A failing stream message ends the stream with UNAVAILABLE.
	if err := b.SetPersonality(backends.Personality{ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	// An injected error still names the backend.
	var md metadata.MD
	if _, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Header(&md)); status.Code(err) != codes.Unavailable || len(md.Get("x-backend")) != 1 {
		t.Errorf("failed call: %v, header %v; want UNAVAILABLE with x-backend", err, md)
	}
	st, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{
		ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("stream with error rate 1: %v, want UNAVAILABLE", err)
	}
}

// TestGRPCHealthHasThePersonality: the health check (what fortio's gRPC
// runner calls) waits for the backend's delay and fails as its error rate
// says, like every other call.
func TestGRPCHealthHasThePersonality(t *testing.T) {
	b := start(t, backends.Config{GRPCAddr: "127.0.0.1:0", Latency: "fixed:20ms"})
	cc, err := grpc.NewClient(b.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	ctx := callCtx(t)
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil { // connect
		t.Fatal(err)
	}
	t0 := time.Now()
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	if el := time.Since(t0); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING || el < 20*time.Millisecond || el > 200*time.Millisecond {
		t.Errorf("check: %v %v after %s, want SERVING after the 20 ms delay", resp.GetStatus(), err, el)
	}
	failing := start(t, backends.Config{GRPCAddr: "127.0.0.1:0", ErrorRate: 1})
	fc, err := grpc.NewClient(failing.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	if _, err := healthpb.NewHealthClient(fc).Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("error rate 1: %v, want Unavailable", err)
	}
}
