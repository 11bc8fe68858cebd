package grpccheck

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/meshbench/meshbench/conformance"
)

// The message sizes of grpc-go's interop cases.
var (
	reqSizes  = []int{27182, 8, 1828, 45904}
	respSizes = []int{31415, 9, 2653, 58979}
)

const (
	largeReqSize  = 271828
	largeRespSize = 314159
	// aggregatedSize is the sum of reqSizes.
	aggregatedSize = 74922

	// streamInterval is the backend's wait before each server-streamed
	// response after the first.
	streamInterval = 150 * time.Millisecond
	// minStreamSpread is the least time between the first and the last
	// server-streamed response at the client. The backend spreads them
	// over 3×streamInterval = 450 ms; a client receiving them as sent
	// misses the bound only if its reading stalls 300 ms between the two,
	// while a proxy that holds the stream delivers them within a
	// millisecond of each other.
	minStreamSpread = 150 * time.Millisecond

	// propDeadline is the deadline of the call whose grpc-timeout the
	// backend records.
	propDeadline = 800 * time.Millisecond
	// propSlack is how much smaller than the deadline left at the
	// backend's receipt its grpc-timeout may be (rounding, a proxy's
	// conservative subtraction).
	propSlack = 50 * time.Millisecond
	// slowDeadline is the deadline of the call to the slow backend, which
	// waits slowDelay.
	slowDeadline = 300 * time.Millisecond
	slowDelay    = 3 * time.Second
	// slowBound is how long after its deadline that call may end.
	slowBound = time.Second

	// Request metadata the metadata check sends.
	mdText       = "x-meshbench-md"
	mdTextValue  = "meshbench metadata value 1"
	mdBin        = "x-meshbench-md-bin"
	echoInitial  = "x-grpc-test-echo-initial"
	echoTrailing = "x-grpc-test-echo-trailing-bin"
	initialValue = "meshbench-initial-value"
)

var (
	mdBinValue    = []byte{0x00, 0x01, 0xfe, 0xff, 'm', 'b'}
	trailingValue = string([]byte{0x0a, 0x0b, 0x00, 0xff, 0x0a, 0x0b})
)

const (
	pathEmpty  = "/grpc.testing.TestService/EmptyCall"
	pathUnary  = "/grpc.testing.TestService/UnaryCall"
	pathOutput = "/grpc.testing.TestService/StreamingOutputCall"
	pathInput  = "/grpc.testing.TestService/StreamingInputCall"
	pathDuplex = "/grpc.testing.TestService/FullDuplexCall"
)

func payload(n int) *testpb.Payload {
	return &testpb.Payload{Type: testpb.PayloadType_COMPRESSABLE, Body: make([]byte, n)}
}

func unary(e *conformance.Env) error {
	be, _, conn, err := setup(e)
	if err != nil {
		return err
	}
	tc := testService(conn)
	const rounds = 3
	for i := range rounds {
		ctx, cancel := call(e)
		var header metadata.MD
		_, err := tc.EmptyCall(ctx, &testpb.Empty{}, grpc.Header(&header))
		cancel()
		if err != nil {
			return fmt.Errorf("EmptyCall %d: %w", i, err)
		}
		if err := checkBackendHeader(fmt.Sprintf("EmptyCall %d", i), header, be); err != nil {
			return err
		}
		ctx, cancel = call(e)
		resp, err := tc.UnaryCall(ctx, &testpb.SimpleRequest{ResponseType: testpb.PayloadType_COMPRESSABLE, ResponseSize: largeRespSize, Payload: payload(largeReqSize)}, grpc.Header(&header))
		cancel()
		if err != nil {
			return fmt.Errorf("UnaryCall %d (%d-byte request): %w", i, largeReqSize, err)
		}
		if n := len(resp.GetPayload().GetBody()); n != largeRespSize {
			return fmt.Errorf("UnaryCall %d: a %d-byte response payload, want %d", i, n, largeRespSize)
		}
		if err := checkBackendHeader(fmt.Sprintf("UnaryCall %d", i), header, be); err != nil {
			return err
		}
	}
	if err := checkSeen(be, pathEmpty, rounds); err != nil {
		return err
	}
	return checkSeen(be, pathUnary, rounds)
}

func serverStreaming(e *conformance.Env) error {
	be, _, conn, err := setup(e)
	if err != nil {
		return err
	}
	ctx, cancel := call(e)
	defer cancel()
	req := &testpb.StreamingOutputCallRequest{ResponseType: testpb.PayloadType_COMPRESSABLE}
	for i, n := range respSizes {
		p := &testpb.ResponseParameters{Size: int32(n)}
		if i > 0 {
			p.IntervalUs = int32(streamInterval / time.Microsecond)
		}
		req.ResponseParameters = append(req.ResponseParameters, p)
	}
	stream, err := testService(conn).StreamingOutputCall(ctx, req)
	if err != nil {
		return fmt.Errorf("StreamingOutputCall: %w", err)
	}
	var got []int
	var times []time.Time
	var end error
	for len(got) <= len(respSizes) {
		resp, err := stream.Recv()
		if err != nil {
			end = err
			break
		}
		got = append(got, len(resp.GetPayload().GetBody()))
		times = append(times, time.Now())
	}
	var problems []string
	if !slices.Equal(got, respSizes) {
		problems = append(problems, fmt.Sprintf("StreamingOutputCall: responses of %v bytes, want %v", got, respSizes))
	}
	if len(times) == len(respSizes) {
		spread := times[len(times)-1].Sub(times[0])
		e.Figure("first_to_last", float64(spread.Microseconds())/1e3, "ms")
		if spread < minStreamSpread {
			problems = append(problems, fmt.Sprintf("StreamingOutputCall: the first and the last response arrived %v apart, want at least %v (the backend sent them %v apart): the proxy does not stream responses", spread.Round(time.Millisecond), minStreamSpread, 3*streamInterval))
		}
	}
	if end != io.EOF {
		problems = append(problems, fmt.Sprintf("StreamingOutputCall: after %d responses, %s, want the end of the stream with OK", len(got), errText(end)))
	}
	if len(problems) > 0 {
		return conformance.Problems(problems)
	}
	hdr, err := stream.Header()
	if err != nil {
		return fmt.Errorf("StreamingOutputCall: header: %w", err)
	}
	if err := checkBackendHeader("StreamingOutputCall", hdr, be); err != nil {
		return err
	}
	return checkSeen(be, pathOutput, 1)
}

func clientStreaming(e *conformance.Env) error {
	be, _, conn, err := setup(e)
	if err != nil {
		return err
	}
	ctx, cancel := call(e)
	defer cancel()
	stream, err := testService(conn).StreamingInputCall(ctx)
	if err != nil {
		return fmt.Errorf("StreamingInputCall: %w", err)
	}
	for i, n := range reqSizes {
		if err := stream.Send(&testpb.StreamingInputCallRequest{Payload: payload(n)}); err != nil {
			return fmt.Errorf("StreamingInputCall: sending message %d (%d bytes): %w", i, n, err)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return fmt.Errorf("StreamingInputCall: after %d messages: %w", len(reqSizes), err)
	}
	if got := resp.GetAggregatedPayloadSize(); got != aggregatedSize {
		return fmt.Errorf("StreamingInputCall: the backend counted %d payload bytes, want %d (messages of %v bytes)", got, aggregatedSize, reqSizes)
	}
	hdr, err := stream.Header()
	if err != nil {
		return fmt.Errorf("StreamingInputCall: header: %w", err)
	}
	if err := checkBackendHeader("StreamingInputCall", hdr, be); err != nil {
		return err
	}
	return checkSeen(be, pathInput, 1)
}

func bidiStreaming(e *conformance.Env) error {
	be, _, conn, err := setup(e)
	if err != nil {
		return err
	}
	ctx, cancel := call(e)
	defer cancel()
	stream, err := testService(conn).FullDuplexCall(ctx)
	if err != nil {
		return fmt.Errorf("FullDuplexCall: %w", err)
	}
	for i := range reqSizes {
		req := &testpb.StreamingOutputCallRequest{ResponseType: testpb.PayloadType_COMPRESSABLE,
			ResponseParameters: []*testpb.ResponseParameters{{Size: int32(respSizes[i])}}, Payload: payload(reqSizes[i])}
		if err := stream.Send(req); err != nil {
			return fmt.Errorf("FullDuplexCall: sending request %d (%d bytes): %w", i, reqSizes[i], err)
		}
		resp, err := stream.Recv()
		if err != nil {
			if status.Code(err) == codes.DeadlineExceeded {
				return fmt.Errorf("FullDuplexCall: no response %d within %v of the call's start: the proxy does not stream both directions at once (%w)", i, callTimeout, err)
			}
			return fmt.Errorf("FullDuplexCall: receiving response %d: %w", i, err)
		}
		if n := len(resp.GetPayload().GetBody()); n != respSizes[i] {
			return fmt.Errorf("FullDuplexCall: response %d has %d bytes, want %d", i, n, respSizes[i])
		}
	}
	if err := stream.CloseSend(); err != nil {
		return fmt.Errorf("FullDuplexCall: half-closing: %w", err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		return fmt.Errorf("FullDuplexCall: after half-closing, %v, want the end of the stream with OK", err)
	}
	hdr, err := stream.Header()
	if err != nil {
		return fmt.Errorf("FullDuplexCall: header: %w", err)
	}
	if err := checkBackendHeader("FullDuplexCall", hdr, be); err != nil {
		return err
	}
	return checkSeen(be, pathDuplex, 1)
}

// failCode and failMessage are the status the backend is asked to fail
// with.
const (
	failCode    = codes.FailedPrecondition
	failMessage = "meshbench: precondition\tfailed, café ☺ 😈 100%"
)

// checkStatus checks that err is the status the backend was asked for.
func checkStatus(what string, err error) error {
	if err == nil {
		return fmt.Errorf("%s: OK, want %v %q", what, failCode, failMessage)
	}
	st := status.Convert(err)
	if st.Code() != failCode || st.Message() != failMessage {
		return fmt.Errorf("%s: status %v %q, want %v %q", what, st.Code(), st.Message(), failCode, failMessage)
	}
	return nil
}

// checkTrailer checks that trailer holds the echoed trailing metadata.
func checkTrailer(what string, trailer metadata.MD) error {
	if got := trailer.Get(echoTrailing); len(got) != 1 || got[0] != trailingValue {
		return fmt.Errorf("%s: trailer %s = %q, want [%q]: the backend's trailing metadata did not come back", what, echoTrailing, got, trailingValue)
	}
	return nil
}

func statusAndTrailers(e *conformance.Env) error {
	be, _, conn, err := setup(e)
	if err != nil {
		return err
	}
	tc := testService(conn)
	echo := metadata.Pairs(echoTrailing, trailingValue)

	// A failed unary call: a trailers-only response.
	ctx, cancel := call(e)
	var trailer metadata.MD
	_, err = tc.UnaryCall(metadata.NewOutgoingContext(ctx, echo), &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(failCode), Message: failMessage}}, grpc.Trailer(&trailer))
	cancel()
	if err := checkStatus("failing UnaryCall", err); err != nil {
		return err
	}
	if err := checkTrailer("failing UnaryCall", trailer); err != nil {
		return err
	}

	// A successful unary call: trailers after the response message.
	ctx, cancel = call(e)
	trailer = nil
	_, err = tc.UnaryCall(metadata.NewOutgoingContext(ctx, echo), &testpb.SimpleRequest{ResponseType: testpb.PayloadType_COMPRESSABLE, ResponseSize: 10}, grpc.Trailer(&trailer))
	cancel()
	if err != nil {
		return fmt.Errorf("successful UnaryCall: %w", err)
	}
	if err := checkTrailer("successful UnaryCall", trailer); err != nil {
		return err
	}

	// A stream that ends with the status after a response.
	ctx, cancel = call(e)
	defer cancel()
	stream, err := tc.FullDuplexCall(metadata.NewOutgoingContext(ctx, echo))
	if err != nil {
		return fmt.Errorf("FullDuplexCall: %w", err)
	}
	if err := stream.Send(&testpb.StreamingOutputCallRequest{ResponseType: testpb.PayloadType_COMPRESSABLE, ResponseParameters: []*testpb.ResponseParameters{{Size: 10}}}); err != nil {
		return fmt.Errorf("FullDuplexCall: sending the first request: %w", err)
	}
	if _, err := stream.Recv(); err != nil {
		return fmt.Errorf("FullDuplexCall: receiving the first response: %w", err)
	}
	if err := stream.Send(&testpb.StreamingOutputCallRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(failCode), Message: failMessage}}); err != nil {
		return fmt.Errorf("FullDuplexCall: sending the failing request: %w", err)
	}
	_, err = stream.Recv()
	if err := checkStatus("FullDuplexCall after one response", err); err != nil {
		return err
	}
	if err := checkTrailer("FullDuplexCall after one response", stream.Trailer()); err != nil {
		return err
	}
	if err := checkSeen(be, pathUnary, 2); err != nil {
		return err
	}
	return checkSeen(be, pathDuplex, 1)
}

// lastCall returns the backend's last recorded call to path.
func lastCall(be *conformance.Backend, path string) (conformance.Request, bool) {
	reqs := be.Requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Path == path && reqs[i].GRPC {
			return reqs[i], true
		}
	}
	return conformance.Request{}, false
}

func deadlinePropagation(e *conformance.Env) error {
	be, _, conn, err := setup(e)
	if err != nil {
		return err
	}
	tc := testService(conn)
	// Connect first, so the measured call does not include the
	// connection's setup.
	ctx, cancel := call(e)
	_, err = tc.EmptyCall(ctx, &testpb.Empty{})
	cancel()
	if err != nil {
		return fmt.Errorf("EmptyCall without a deadline: %w", err)
	}
	be.Clear()

	var problems []string
	ctx, cancel = contextWithTimeout(e, propDeadline)
	start := time.Now()
	_, err = tc.EmptyCall(ctx, &testpb.Empty{})
	cancel()
	if err != nil {
		return fmt.Errorf("EmptyCall with a %v deadline: %w", propDeadline, err)
	}
	r, ok := lastCall(be, pathEmpty)
	if !ok {
		return fmt.Errorf("EmptyCall with a %v deadline: the backend saw no call", propDeadline)
	}
	elapsed := r.Time.Sub(start)
	least := propDeadline - elapsed - propSlack
	e.Figure("grpc_timeout_at_backend", float64(r.Timeout.Microseconds())/1e3, "ms")
	e.Figure("call_start_to_backend", float64(elapsed.Microseconds())/1e3, "ms")
	switch {
	case r.Timeout == 0:
		problems = append(problems, fmt.Sprintf("a call with a %v deadline reached the backend without a grpc-timeout (header %q)", propDeadline, r.Header.Get("Grpc-Timeout")))
	case r.Timeout > propDeadline:
		problems = append(problems, fmt.Sprintf("a call with a %v deadline reached the backend with grpc-timeout %v: larger than the client's", propDeadline, r.Timeout))
	case r.Timeout < least:
		problems = append(problems, fmt.Sprintf("a call with a %v deadline reached the backend %v after its start with grpc-timeout %v, want at least %v (the deadline left less %v)", propDeadline, elapsed.Round(10*time.Microsecond), r.Timeout, least.Round(time.Millisecond), propSlack))
	}

	be.Set(conformance.Behaviour{Delay: slowDelay})
	ctx, cancel = contextWithTimeout(e, slowDeadline)
	start = time.Now()
	_, err = tc.EmptyCall(ctx, &testpb.Empty{})
	took := time.Since(start)
	cancel()
	e.Figure("slow_call_duration", float64(took.Microseconds())/1e3, "ms")
	switch {
	case status.Code(err) != codes.DeadlineExceeded:
		problems = append(problems, fmt.Sprintf("a call with a %v deadline to a backend that waits %v ended with %v, want DEADLINE_EXCEEDED", slowDeadline, slowDelay, errText(err)))
	case took > slowDeadline+slowBound:
		problems = append(problems, fmt.Sprintf("a call with a %v deadline to a backend that waits %v ended DEADLINE_EXCEEDED after %v, want within %v", slowDeadline, slowDelay, took.Round(time.Millisecond), slowDeadline+slowBound))
	}
	if r, ok := lastCall(be, pathEmpty); !ok || r.Time.Before(start) {
		problems = append(problems, fmt.Sprintf("the call with a %v deadline to the slow backend did not reach it", slowDeadline))
	} else if r.Timeout == 0 || r.Timeout > slowDeadline {
		problems = append(problems, fmt.Sprintf("the call with a %v deadline reached the slow backend with grpc-timeout %v (header %q), want one no larger than %v", slowDeadline, r.Timeout, r.Header.Get("Grpc-Timeout"), slowDeadline))
	}
	return conformance.Problems(problems)
}

func errText(err error) string {
	if err == nil {
		return "OK"
	}
	st := status.Convert(err)
	return fmt.Sprintf("%v %q", st.Code(), st.Message())
}

func metadataCheck(e *conformance.Env) error {
	be, _, conn, err := setup(e)
	if err != nil {
		return err
	}
	tc := testService(conn)
	md := metadata.Pairs(mdText, mdTextValue, mdBin, string(mdBinValue), echoInitial, initialValue)

	ctx, cancel := call(e)
	var header metadata.MD
	_, err = tc.UnaryCall(metadata.NewOutgoingContext(ctx, md), &testpb.SimpleRequest{ResponseType: testpb.PayloadType_COMPRESSABLE, ResponseSize: 1}, grpc.Header(&header))
	cancel()
	if err != nil {
		return fmt.Errorf("UnaryCall with metadata: %w", err)
	}
	var problems []string
	r, ok := lastCall(be, pathUnary)
	if !ok {
		return errors.New("UnaryCall with metadata: the backend saw no call")
	}
	if got := r.Header.Values(mdText); len(got) != 1 || got[0] != mdTextValue {
		problems = append(problems, fmt.Sprintf("request metadata %s reached the backend as %q, want [%q]", mdText, got, mdTextValue))
	}
	if got := r.Header.Values(mdBin); len(got) != 1 {
		problems = append(problems, fmt.Sprintf("binary request metadata %s reached the backend as %q, want one value", mdBin, got))
	} else if b, err := decodeBin(got[0]); err != nil || string(b) != string(mdBinValue) {
		problems = append(problems, fmt.Sprintf("binary request metadata %s reached the backend as %q, want base64 of %x", mdBin, got[0], mdBinValue))
	}
	if got := header.Get(echoInitial); len(got) != 1 || got[0] != initialValue {
		problems = append(problems, fmt.Sprintf("UnaryCall: initial metadata %s came back as %q, want [%q]", echoInitial, got, initialValue))
	}
	if err := checkBackendHeader("UnaryCall", header, be); err != nil {
		problems = append(problems, err.Error())
	}

	ctx, cancel = call(e)
	defer cancel()
	stream, err := tc.FullDuplexCall(metadata.NewOutgoingContext(ctx, md))
	if err != nil {
		return fmt.Errorf("FullDuplexCall with metadata: %w", err)
	}
	if err := stream.Send(&testpb.StreamingOutputCallRequest{ResponseType: testpb.PayloadType_COMPRESSABLE, ResponseParameters: []*testpb.ResponseParameters{{Size: 1}}}); err != nil {
		return fmt.Errorf("FullDuplexCall with metadata: sending: %w", err)
	}
	if _, err := stream.Recv(); err != nil {
		return fmt.Errorf("FullDuplexCall with metadata: receiving: %w", err)
	}
	hdr, err := stream.Header()
	if err != nil {
		return fmt.Errorf("FullDuplexCall with metadata: header: %w", err)
	}
	if got := hdr.Get(echoInitial); len(got) != 1 || got[0] != initialValue {
		problems = append(problems, fmt.Sprintf("FullDuplexCall: initial metadata %s came back as %q, want [%q]", echoInitial, got, initialValue))
	}
	if err := checkBackendHeader("FullDuplexCall", hdr, be); err != nil {
		problems = append(problems, err.Error())
	}
	if err := stream.CloseSend(); err != nil {
		return fmt.Errorf("FullDuplexCall with metadata: half-closing: %w", err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		return fmt.Errorf("FullDuplexCall with metadata: after half-closing, %s, want the end of the stream with OK", errText(err))
	}
	if r, ok := lastCall(be, pathDuplex); !ok {
		problems = append(problems, "FullDuplexCall: the backend saw no call")
	} else if got := r.Header.Values(mdText); len(got) != 1 || got[0] != mdTextValue {
		problems = append(problems, fmt.Sprintf("FullDuplexCall: request metadata %s reached the backend as %q, want [%q]", mdText, got, mdTextValue))
	}
	return conformance.Problems(problems)
}

// decodeBin decodes a -bin metadata value: base64, padded or not.
func decodeBin(v string) ([]byte, error) {
	if b, err := base64.RawStdEncoding.DecodeString(v); err == nil {
		return b, nil
	}
	return base64.StdEncoding.DecodeString(v)
}
