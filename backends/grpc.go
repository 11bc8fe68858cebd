package backends

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// newGRPCServer returns a gRPC server with the echo service registered and
// every call's header metadata naming the backend.
func (b *Backend) newGRPCServer() *grpc.Server {
	md := metadata.Pairs(strings.ToLower(HeaderBackend), b.name)
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := grpc.SetHeader(ctx, md); err != nil {
				b.log.Debug("set gRPC header", "err", err)
			}
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := ss.SetHeader(md); err != nil {
				b.log.Debug("set gRPC header", "err", err)
			}
			return h(srv, ss)
		}),
	)
	echo := &echoService{b: b}
	testgrpc.RegisterTestServiceServer(srv, echo)
	healthpb.RegisterHealthServer(srv, &healthService{echo: echo})
	return srv
}

// healthService answers grpc.health.v1.Health/Check with the backend's
// personality, as EmptyCall does: the call fortio's gRPC runner makes, so
// that `meshbench load --engine fortio` measures the same service as
// meshbench's own engine.
type healthService struct {
	healthpb.UnimplementedHealthServer
	echo *echoService
}

// Check answers SERVING after the backend's delay, or fails as the
// personality says.
func (h *healthService) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if err := h.echo.behave(ctx, h.echo.b.cur.Load(), time.Now()); err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// echoService implements grpc.testing.TestService with the backend's
// personality: every unary call and every streamed response message waits
// for its own delay and may fail with UNAVAILABLE.
type echoService struct {
	testgrpc.UnimplementedTestServiceServer
	b *Backend
}

// behave applies the personality to one response and turns the outcome
// into a gRPC status error.
func (s *echoService) behave(ctx context.Context, st *state, arrival time.Time) error {
	fail, err := s.b.behave(ctx, st, arrival)
	if err != nil {
		return status.FromContextError(err).Err()
	}
	if fail {
		return status.Errorf(codes.Unavailable, "backend %s: injected error", s.b.name)
	}
	return nil
}

// echoStatus returns the status a request asks to be answered with, if any.
func echoStatus(es *testgrpc.EchoStatus) error {
	if es == nil || es.GetCode() == 0 {
		return nil
	}
	return status.Error(codes.Code(es.GetCode()), es.GetMessage())
}

func payload(n int) *testgrpc.Payload {
	return &testgrpc.Payload{Type: testgrpc.PayloadType_COMPRESSABLE, Body: make([]byte, n)}
}

// EmptyCall answers with an empty message.
func (s *echoService) EmptyCall(ctx context.Context, _ *testgrpc.Empty) (*testgrpc.Empty, error) {
	if err := s.behave(ctx, s.b.cur.Load(), time.Now()); err != nil {
		return nil, err
	}
	return &testgrpc.Empty{}, nil
}

// UnaryCall answers with a payload of the requested size, or of the
// configured response size when the request asks for 0.
func (s *echoService) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	arrival, st := time.Now(), s.b.cur.Load()
	n, err := responseSize(req.GetResponseSize(), st)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := s.behave(ctx, st, arrival); err != nil {
		return nil, err
	}
	if err := echoStatus(req.GetResponseStatus()); err != nil {
		return nil, err
	}
	return &testgrpc.SimpleResponse{Payload: payload(n)}, nil
}

// StreamingOutputCall sends one message per response parameter, each after
// its interval and its own delay.
func (s *echoService) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, stream testgrpc.TestService_StreamingOutputCallServer) error {
	if err := s.respond(stream.Context(), req, stream.Send); err != nil {
		return err
	}
	return echoStatus(req.GetResponseStatus())
}

// StreamingInputCall reads every request and answers with the sum of their
// payload sizes, after one delay.
func (s *echoService) StreamingInputCall(stream testgrpc.TestService_StreamingInputCallServer) error {
	var total int
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		total += len(req.GetPayload().GetBody())
	}
	if err := s.behave(stream.Context(), s.b.cur.Load(), time.Now()); err != nil {
		return err
	}
	return stream.SendAndClose(&testgrpc.StreamingInputCallResponse{AggregatedPayloadSize: int32(total)})
}

// FullDuplexCall answers each request as it arrives, like
// StreamingOutputCall.
func (s *echoService) FullDuplexCall(stream testgrpc.TestService_FullDuplexCallServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := echoStatus(req.GetResponseStatus()); err != nil {
			return err
		}
		if err := s.respond(stream.Context(), req, stream.Send); err != nil {
			return err
		}
	}
}

// respond sends the responses one streaming request asks for.
func (s *echoService) respond(ctx context.Context, req *testgrpc.StreamingOutputCallRequest, send func(*testgrpc.StreamingOutputCallResponse) error) error {
	for _, rp := range req.GetResponseParameters() {
		if iv := rp.GetIntervalUs(); iv > 0 {
			if err := s.b.waitUntil(ctx, time.Now().Add(time.Duration(iv)*time.Microsecond)); err != nil {
				return status.FromContextError(err).Err()
			}
		}
		arrival, st := time.Now(), s.b.cur.Load()
		n, err := responseSize(rp.GetSize(), st)
		if err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		if err := s.behave(ctx, st, arrival); err != nil {
			return err
		}
		if err := send(&testgrpc.StreamingOutputCallResponse{Payload: payload(n)}); err != nil {
			return err
		}
	}
	return nil
}
