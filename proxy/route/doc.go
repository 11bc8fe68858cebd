// Package route compiles the routes of a listener into a table and matches
// requests against it. Routes are tried in order and the first match wins.
// A route matches on the authority (exact or "*.suffix"), the path (exact or
// prefix), headers (exact, regular expression or presence) and, for gRPC
// requests, the service and method.
package route
