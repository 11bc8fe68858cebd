// Package h1client is the reference proxy's HTTP/1.1 upstream client: a
// per-endpoint pool of keep-alive connections on which a request is written
// and its response read by the calling goroutine itself.
//
// net/http's Transport hands every request to a per-connection writer
// goroutine and every response from a per-connection reader goroutine; on a
// proxy's hot path, where each request is one small exchange, those
// hand-offs and the Transport's general machinery cost more than the
// exchange. This client keeps the exchange on one goroutine (a request body,
// when there is one, is written by a second goroutine so the response can
// stream back while the body is still arriving), writes header fields in
// the order they come, adds nothing of its own (no User-Agent, no
// Accept-Encoding), and parses responses with net/http's ReadResponse, so
// framing, chunking, trailers and HEAD/1xx/204/304 rules are the standard
// library's.
//
// A connection returns to its pool only after its response body was read to
// the end, the request body (if any) was written whole, neither side asked
// to close, and no byte beyond the response was buffered. An idle
// connection is watched: a byte that arrives unasked (a second response, a
// body after a HEAD, 204 or 304) or the peer's close closes it, so bytes
// meant for one exchange are never read as another's response. A request
// taking an idle connection stops its watcher first (two deadline changes
// and a goroutine wake-up, as net/http's Transport pays in its read loop).
// A request without a body that fails on a reused
// connection before any response byte arrived is retried once on a new
// connection: the server may have closed the idle connection as the request
// was sent.
package h1client
