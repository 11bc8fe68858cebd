// Package backends provides meshbench's test services: a Backend serves
// one HTTP port that speaks HTTP/1.1 and h2c (prior knowledge) on the same
// listener, and optionally one gRPC port with grpc-go's interop echo
// service (grpc.testing.TestService: EmptyCall, UnaryCall,
// StreamingOutputCall, StreamingInputCall, FullDuplexCall).
//
// Every response names the backend instance, in the X-Backend HTTP header
// and the x-backend gRPC header metadata, so that a load generator can
// count requests per endpoint behind a proxy.
//
// A Backend has a Personality: a Latency (a base delay distribution and
// optional periodic stalls, parsed from a spec such as
// "lognormal:4ms/0.5,stall:3s/300ms", see ParseLatency), an error rate
// (HTTP 503 or gRPC UNAVAILABLE) and a response size. The personality is
// applied to every HTTP request, every unary gRPC call and every streamed
// gRPC response message; it can be changed while the backend runs with
// SetPersonality or through the admin endpoint ConfigPath on the HTTP
// port. Delays are waited for on timers, measured from the request's
// arrival, and end early when the client goes away.
//
// Typical use:
//
//	b, err := backends.New(backends.Config{Name: "echo-1", Latency: "fixed:2ms", GRPCAddr: "127.0.0.1:0"}, log)
//	if err != nil { ... }
//	if err := b.Start(ctx); err != nil { ... }
//	defer b.Shutdown(context.Background())
//	url := "http://" + b.HTTPAddr() + "/"
package backends
