// Package grpccheck holds the grpc profile's conformance checks: unary and
// streaming calls through the proxy with their message sizes and counts,
// statuses and trailers, deadlines and metadata carried both ways, and
// grpc-go's interop client cases, which run in a child process (Child)
// because they end the process on a failure.
package grpccheck
