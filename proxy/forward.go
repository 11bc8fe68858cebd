package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/meshbench/meshbench/proxy/balancer"
	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/proxy/h1client"
	"github.com/meshbench/meshbench/proxy/metrics"
	"github.com/meshbench/meshbench/proxy/pathnorm"
	"github.com/meshbench/meshbench/proxy/retry"
	"github.com/meshbench/meshbench/proxy/route"
)

// handler serves the requests of one listener.
type handler struct {
	log       *slog.Logger
	direction string
	table     *route.Table
	routes    []*routeState
	noRoute   *metrics.Route
	tls       bool
	// bodyIdle, when positive, ends a request whose body sends nothing
	// for that long.
	bodyIdle time.Duration
	// slashes is the listener's action on an escaped slash in a path.
	slashes pathnorm.SlashAction
	// authz, when set, is the listener's allow-list (see authorize).
	authz *authz
}

// routeState is a compiled route: its destination, its header edits and
// its series.
type routeState struct {
	cluster *cluster
	pools   pools         // the cluster's pools for this route's listener
	timeout time.Duration // <= 0: none
	retry   *retry.Policy // nil: no retries
	add     []headerKV
	remove  []string
	m       *metrics.Route
}

type headerKV struct{ key, value string }

func newRouteState(rc *config.Route, c *cluster, m *metrics.Route) *routeState {
	rs := &routeState{cluster: c, pools: c.poolsFor(""), timeout: rc.Timeout.D(), m: m}
	if rt := rc.Retry; rt != nil {
		on, _ := retry.ParseConditions(rt.On)
		p := retry.Policy{Attempts: rt.Attempts, On: on, PerTryTimeout: rt.PerTryTimeout.D(),
			BackoffBase: rt.Backoff.Base.D(), BackoffMax: rt.Backoff.Max.D(), BufferLimit: rt.BufferLimit}.WithDefaults()
		rs.retry = &p
	}
	for k, v := range rc.RequestHeaders.Add {
		rs.add = append(rs.add, headerKV{http.CanonicalHeaderKey(k), v})
	}
	sort.Slice(rs.add, func(i, j int) bool { return rs.add[i].key < rs.add[j].key })
	for _, k := range rc.RequestHeaders.Remove {
		rs.remove = append(rs.remove, http.CanonicalHeaderKey(k))
	}
	return rs
}

// Client-side outcomes that have no HTTP status of their own.
const (
	// statusClientClosed is recorded when the client went away before the
	// response was complete (nginx's 499).
	statusClientClosed = 499
)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if h.tls && r.TLS == nil {
		// TLS was terminated below net/http (see tlsListener).
		r.TLS = tlsStateFrom(r.Context())
	}
	isGRPC := route.IsGRPC(r)
	if r.ProtoMajor == 2 && !h.validPseudoHeaders(w, r, isGRPC, start) {
		return
	}
	if !h.normalizePath(w, r, isGRPC, start) {
		return
	}
	i := h.table.Match(r)
	if h.authz != nil && !h.authorize(w, r, i, isGRPC, start) {
		return
	}
	if i < 0 {
		h.noRoute.Request()
		st, gs := writeError(w, r, isGRPC, http.StatusNotFound, grpcUnimplemented, "no route")
		h.noRoute.Response(st, gs, time.Since(start))
		return
	}
	rs := h.routes[i]
	rs.m.Request()
	o := h.forward(w, r, rs, isGRPC, start)
	rs.m.Response(o.status, o.grpcStatus, time.Since(start))
	if o.abort {
		// The response was already under way when the upstream failed:
		// reset the stream (HTTP/2) or close the connection (HTTP/1.1) so
		// the client cannot take a truncated body for a whole one.
		panic(http.ErrAbortHandler)
	}
}

// validPseudoHeaders refuses, with 400, an HTTP/2 request whose :method,
// :authority or :path could not be written on an HTTP/1.1 request line or
// Host field as they are (h1client.CheckRequestLine): net/http's HTTP/2
// server passes them through.
func (h *handler) validPseudoHeaders(w http.ResponseWriter, r *http.Request, isGRPC bool, start time.Time) bool {
	err := h1client.CheckRequestLine(r.Method, r.RequestURI, r.Host)
	if err == nil {
		return true
	}
	h.noRoute.Request()
	h.log.Debug("request refused", "err", err)
	st, gs := writeError(w, r, isGRPC, http.StatusBadRequest, grpcInvalidArgument, "bad pseudo-header: "+err.Error())
	h.noRoute.Response(st, gs, time.Since(start))
	return false
}

// normalizePath replaces r's path by its normalised form, which routes,
// authz and the upstream all see. A path that cannot be normalised is
// answered 400 (gRPC INVALID_ARGUMENT) and normalizePath returns false.
func (h *handler) normalizePath(w http.ResponseWriter, r *http.Request, isGRPC bool, start time.Time) bool {
	if r.Method == http.MethodOptions && r.URL.Path == "*" {
		return true
	}
	raw, dec, err := pathnorm.Normalize(r.URL.EscapedPath(), h.slashes)
	if err != nil {
		h.noRoute.Request()
		h.log.Debug("request path refused", "path", r.URL.EscapedPath(), "err", err)
		st, gs := writeError(w, r, isGRPC, http.StatusBadRequest, grpcInvalidArgument, "bad request path: "+err.Error())
		h.noRoute.Response(st, gs, time.Since(start))
		return false
	}
	if dec != r.URL.Path || raw != r.URL.EscapedPath() {
		u := *r.URL
		u.Path, u.RawPath = dec, raw
		r.URL = &u
	}
	return true
}

type outcome struct {
	status     int
	grpcStatus int // -1 for non-gRPC
	abort      bool
}

func (h *handler) forward(w http.ResponseWriter, r *http.Request, rs *routeState, isGRPC bool, start time.Time) (o outcome) {
	o.grpcStatus = -1
	var deadline time.Time
	if rs.timeout > 0 {
		deadline = start.Add(rs.timeout)
	}
	clientTimeout := false
	if isGRPC {
		if v := r.Header["Grpc-Timeout"]; len(v) > 0 {
			if d, ok := parseGRPCTimeout(v[0]); ok {
				clientTimeout = true
				if dl := start.Add(d); deadline.IsZero() || dl.Before(deadline) {
					deadline = dl
				}
			}
		}
	}
	c := rs.cluster
	var dst *host
	if c.dstHeader != "" {
		var st, code int
		var msg string
		if dst, st, code, msg = c.destination(r.Header); dst == nil {
			h.log.Debug("destination refused", "path", r.URL.Path, "status", st, "reason", msg)
			o.status, o.grpcStatus = writeError(w, r, isGRPC, st, code, msg)
			return o
		}
	}
	h1 := rs.h1ForMajor(r.ProtoMajor)
	var info balancer.PickInfo
	if c.hashed {
		if c.hashHeader != "" {
			info.Key = r.Header.Get(c.hashHeader)
		} else {
			info.Key = clientIP(r.RemoteAddr)
		}
	}
	// An HTTP/2 request whose HEADERS ended the stream has a body that
	// reads nothing at once (ContentLength 0): it goes upstream bodiless,
	// not as an empty chunked body.
	hasBody := r.Body != http.NoBody && r.ContentLength != 0
	var down *downstreamBody
	if hasBody {
		down = &downstreamBody{rc: r.Body}
		if h.bodyIdle > 0 {
			down.idle, down.rc2 = h.bodyIdle, http.NewResponseController(w)
		}
		r.Body = down
	}
	if hasBody && r.ProtoMajor == 1 {
		// Let the upstream's response stream back while the request body
		// is still arriving.
		_ = http.NewResponseController(w).EnableFullDuplex()
	}
	pol := rs.retry
	var body *retry.Body
	if pol != nil && hasBody {
		body = retry.NewBody(r.Body, pol.BufferLimit)
	}
	c.budget.Begin()
	defer c.budget.End()
	holdingRetry := false
	defer func() {
		if holdingRetry {
			c.budget.Done()
		}
	}()

	var reqBody io.ReadCloser
	switch {
	case body != nil:
		reqBody, _ = body.Attempt() // the first attempt always gets one
	case hasBody:
		reqBody = r.Body
	}
	for n := 1; ; n++ {
		a := attempt{n: n, tryDeadline: deadline, dst: dst}
		if pol != nil && pol.PerTryTimeout > 0 {
			if t := time.Now().Add(pol.PerTryTimeout); deadline.IsZero() || t.Before(deadline) {
				a.tryDeadline, a.perTry = t, true
			}
		}
		h.exchange(r, rs, c, h1, info, clientTimeout, reqBody, &a)
		if pol == nil || n >= pol.Attempts || !h.retryable(r, pol, isGRPC, &a) {
			return h.respond(w, r, isGRPC, &a)
		}
		wait := pol.Backoff(n, nil)
		if !deadline.IsZero() && time.Now().Add(wait).After(deadline) {
			return h.respond(w, r, isGRPC, &a)
		}
		if holdingRetry {
			c.budget.Done()
			holdingRetry = false
		}
		if !c.budget.TryRetry() {
			return h.respond(w, r, isGRPC, &a)
		}
		holdingRetry = true
		if body != nil {
			next, ok := body.Attempt()
			if !ok {
				// The body outgrew the buffer: it cannot be sent again.
				return h.respond(w, r, isGRPC, &a)
			}
			reqBody = next
		}
		a.discard()
		if !sleepCtx(r.Context(), wait) {
			o.status, o.abort = statusClientClosed, true
			if isGRPC {
				o.grpcStatus = grpcCanceled
			}
			return o
		}
	}
}

// attempt is one exchange with an endpoint.
type attempt struct {
	n           int       // 1 for the first attempt
	tryDeadline time.Time // the attempt's deadline: the route's, or the per-try timeout's if sooner
	perTry      bool      // tryDeadline is the per-try timeout's
	dst         *host     // the endpoint the request named (original_dst), or nil
	ctx         context.Context
	cancel      context.CancelFunc
	cluster     *cluster
	pick        balancer.Result
	host        *host
	start       time.Time
	resp        *http.Response
	err         error // no response: pick, connect or exchange failure
	noEndpoint  bool
	ended       bool // end was called
}

// end records the attempt's outcome with its endpoint (the balancer's
// Done, the active count, outlier detection), once: every path of an
// attempt that picked an endpoint ends here, and a second call does
// nothing.
func (a *attempt) end(err error, status int, clientGone bool) {
	if a.ended || a.host == nil {
		return
	}
	a.ended = true
	a.cluster.finish(a.pick, a.host, err, status, a.start, clientGone)
}

// exchange sends the request to a picked endpoint and reads the response
// headers into a.
func (h *handler) exchange(r *http.Request, rs *routeState, c *cluster, h1 *h1client.Client, info balancer.PickInfo, clientTimeout bool, body io.ReadCloser, a *attempt) {
	a.cluster = c
	a.start = time.Now()
	// The HTTP/1.1 client enforces the deadline on its connection; the
	// HTTP/2 Transport needs it in the context.
	a.ctx = r.Context()
	if h1 == nil && !a.tryDeadline.IsZero() {
		a.ctx, a.cancel = context.WithDeadline(a.ctx, a.tryDeadline)
	}
	if err := r.Context().Err(); err != nil {
		// The client already cancelled (an HTTP/2 stream reset as soon as
		// it was opened, say): nothing is dialled or sent for it.
		a.err = err
		return
	}
	pick, host, err := c.pick(info, a.dst)
	if err != nil {
		a.err, a.noEndpoint = err, true
		return
	}
	a.pick, a.host = pick, host
	if a.n > 1 {
		host.retries.Add(1)
	}
	p, scheme := rs.pools, c.scheme
	if c.plain != nil && !host.viaGateway {
		p, scheme = *c.plain, "http"
	}
	out := r.WithContext(a.ctx)
	// Pools are keyed by the address dialed: a gateway's connections carry
	// the requests of every endpoint behind it.
	out.URL = &url.URL{Scheme: scheme, Host: host.dial, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	out.RequestURI = ""
	out.Close = false
	out.Header = h.upstreamHeader(r, rs, clientTimeout, a.tryDeadline)
	c.setDst(out.Header, host)
	out.Body = body
	if h1 != nil {
		a.resp, a.err = p.h1.Do(a.ctx, out, a.tryDeadline)
	} else {
		a.resp, a.err = p.h2.RoundTrip(out)
	}
	if a.err != nil {
		a.end(a.err, 0, r.Context().Err() != nil)
	}
}

// retryable reports whether the policy retries the attempt's outcome.
func (h *handler) retryable(r *http.Request, pol *retry.Policy, isGRPC bool, a *attempt) bool {
	if r.Context().Err() != nil || a.noEndpoint {
		return false
	}
	if a.err != nil {
		var oe *net.OpError
		switch {
		case timedOut(a.ctx, a.err):
			// Only a per-try timeout leaves time for another attempt.
			return a.perTry && pol.On.Reset
		case errors.As(a.err, &oe) && oe.Op == "dial":
			return pol.On.ConnectFailure
		default:
			return pol.On.Reset
		}
	}
	if a.resp.StatusCode == http.StatusServiceUnavailable && pol.On.Status503 {
		return true
	}
	// A gRPC failure can be retried only when nothing of the response
	// body was sent: a trailers-only response, its status in the headers.
	return isGRPC && pol.On.Unavailable && grpcStatusOf(a.resp.Header) == grpcUnavailable
}

// discard ends an attempt whose response will not be forwarded.
func (a *attempt) discard() {
	if a.resp != nil {
		a.resp.Body.Close()
		a.end(nil, a.resp.StatusCode, false)
	}
	if a.cancel != nil {
		a.cancel()
	}
}

// sleepCtx waits for d, or returns false as soon as ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// respond forwards the final attempt's response, or answers its failure.
func (h *handler) respond(w http.ResponseWriter, r *http.Request, isGRPC bool, a *attempt) (o outcome) {
	o.grpcStatus = -1
	if a.cancel != nil {
		defer a.cancel()
	}
	if a.noEndpoint {
		o.status, o.grpcStatus = writeError(w, r, isGRPC, http.StatusServiceUnavailable, grpcUnavailable, "no healthy upstream")
		return o
	}
	if a.err != nil {
		return h.upstreamFailure(w, r, a.ctx, isGRPC, a.err)
	}
	resp := a.resp
	defer resp.Body.Close()
	dst := w.Header()
	copyResponseHeader(dst, resp.Header)
	if isGRPC {
		o.grpcStatus = grpcStatusOf(resp.Header)
	}
	// A response whose headers ended the stream (a gRPC trailers-only
	// response among them) must leave the same way: one HEADERS frame with
	// END_STREAM, so nothing is flushed early.
	trailersOnly := isGRPC && o.grpcStatus >= 0
	streaming := (isGRPC || resp.ContentLength < 0) && !trailersOnly && resp.ContentLength != 0
	w.WriteHeader(resp.StatusCode)
	o.status = resp.StatusCode
	if streaming {
		// Headers go out now: a stream's first message may be far away.
		_ = http.NewResponseController(w).Flush()
	}
	if err := copyBody(w, resp.Body, streaming); err != nil {
		clientGone := r.Context().Err() != nil || errors.Is(err, errDownstreamWrite)
		st := resp.StatusCode
		if !clientGone {
			st = 0 // the endpoint broke the response off
		}
		a.end(err, st, clientGone)
		switch {
		case clientGone:
			o.status, o.abort = statusClientClosed, true
			if isGRPC {
				o.grpcStatus = grpcCanceled
			}
		case isGRPC:
			// End the stream with a status the client can act on.
			code, msg := grpcUnavailable, "upstream reset the stream"
			if timedOut(a.ctx, err) {
				code, msg = grpcDeadlineExceeded, "deadline exceeded"
			}
			dst[http.TrailerPrefix+"Grpc-Status"] = []string{itoa(code)}
			dst[http.TrailerPrefix+"Grpc-Message"] = []string{msg}
			o.grpcStatus = code
		default:
			o.abort = true
		}
		return o
	}
	for k, vv := range resp.Trailer {
		dst[http.TrailerPrefix+k] = vv
	}
	if isGRPC && resp.Trailer != nil {
		if g := grpcStatusOf(resp.Trailer); g >= 0 {
			o.grpcStatus = g
		}
	}
	a.end(nil, resp.StatusCode, false)
	return o
}

// upstreamFailure answers a request that got no response from upstream.
func (h *handler) upstreamFailure(w http.ResponseWriter, r *http.Request, ctx context.Context, isGRPC bool, err error) outcome {
	o := outcome{grpcStatus: -1}
	var oe *net.OpError
	down, _ := r.Body.(*downstreamBody)
	if down != nil && r.Context().Err() != nil {
		down.settle(100 * time.Millisecond)
	}
	switch {
	case down != nil && down.timedOut():
		o.status, o.grpcStatus = writeError(w, r, isGRPC, http.StatusRequestTimeout, grpcDeadlineExceeded, "request body timeout")
	case down != nil && down.failed() && r.ProtoMajor == 1:
		// The request's own body broke off (a malformed chunk, a client
		// that closed its side mid-body; net/http then cancels the
		// request's context): the upstream never got a whole request.
		// The client, if it still reads, learns why; the connection
		// closes after.
		o.status, o.grpcStatus = writeError(w, r, isGRPC, http.StatusBadRequest, grpcInvalidArgument, "malformed or incomplete request body")
	case r.Context().Err() != nil:
		// The client is gone; there is nobody to answer, and nothing may
		// be written in the proxy's name (net/http would send 200).
		o.status, o.abort = statusClientClosed, true
		if isGRPC {
			o.grpcStatus = grpcCanceled
		}
		return o
	case timedOut(ctx, err):
		o.status, o.grpcStatus = writeError(w, r, isGRPC, http.StatusGatewayTimeout, grpcDeadlineExceeded, "upstream request timeout")
	case errors.As(err, &oe) && oe.Op == "dial":
		o.status, o.grpcStatus = writeError(w, r, isGRPC, http.StatusServiceUnavailable, grpcUnavailable, "upstream connect error")
	default:
		o.status, o.grpcStatus = writeError(w, r, isGRPC, http.StatusBadGateway, grpcUnavailable, "upstream reset or protocol error")
	}
	h.log.Debug("upstream request failed", "path", r.URL.Path, "status", o.status, "err", err)
	return o
}

var errDownstreamWrite = errors.New("writing to downstream")

// downstreamBody is a request's body as the client sends it; it remembers
// whether reading it failed (anything but a clean end).
type downstreamBody struct {
	rc  io.ReadCloser
	mu  sync.Mutex
	err error
	// reading is held for the length of each Read (see settle).
	reading sync.Mutex
	// idle, when set, bounds each read through rc2 (the listener's
	// body_idle_timeout).
	idle time.Duration
	rc2  *http.ResponseController
}

func (b *downstreamBody) Read(p []byte) (int, error) {
	b.reading.Lock()
	defer b.reading.Unlock()
	if b.idle > 0 {
		_ = b.rc2.SetReadDeadline(time.Now().Add(b.idle))
	}
	n, err := b.rc.Read(p)
	if err != nil && b.idle > 0 {
		// The body is over: the deadline must not outlive it (on
		// HTTP/1.1 it would end the connection's next read).
		_ = b.rc2.SetReadDeadline(time.Time{})
	}
	if err != nil && err != io.EOF {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

func (b *downstreamBody) Close() error { return b.rc.Close() }

// settle waits, up to d, for a Read in progress to return. net/http cancels
// a request's context from inside the read that fails, before the read
// returns its error: one who sees the context end has to let that read
// finish to learn why.
func (b *downstreamBody) settle(d time.Duration) {
	if b.reading.TryLock() {
		b.reading.Unlock()
		return
	}
	done := make(chan struct{})
	go func() {
		b.reading.Lock()
		b.reading.Unlock()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// failed reports whether a read of the body failed.
func (b *downstreamBody) failed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err != nil
}

// timedOut reports whether the body failed by sending nothing for the
// idle timeout.
func (b *downstreamBody) timedOut() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.idle > 0 && errors.Is(b.err, os.ErrDeadlineExceeded)
}

// timedOut reports whether the request's deadline ended the exchange: the
// context's (HTTP/2 upstream) or the connection's (HTTP/1.1 upstream).
func timedOut(ctx context.Context, err error) bool {
	return ctx.Err() == context.DeadlineExceeded || errors.Is(err, os.ErrDeadlineExceeded)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBody streams body to w, flushing after every write when flush is set.
func copyBody(w http.ResponseWriter, body io.Reader, flush bool) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var f http.Flusher
	if flush {
		f, _ = w.(http.Flusher)
	}
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return errDownstreamWrite
			}
			if f != nil {
				f.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// writeError answers with a short plain-text body, or, for gRPC, with a
// trailers-only response carrying code. It returns the HTTP status and gRPC
// status (-1 for non-gRPC) written. An HTTP/1.1 request with a body gets
// "Connection: close": its body may be partly unread, and the connection
// cannot carry another request until it is skipped.
func writeError(w http.ResponseWriter, r *http.Request, isGRPC bool, status, code int, msg string) (int, int) {
	h := w.Header()
	if isGRPC {
		h["Content-Type"] = []string{"application/grpc"}
		h["Grpc-Status"] = []string{itoa(code)}
		h["Grpc-Message"] = []string{msg}
		w.WriteHeader(http.StatusOK)
		return http.StatusOK, code
	}
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	if r.ProtoMajor == 1 && r.Body != http.NoBody {
		h["Connection"] = []string{"close"}
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
	return status, -1
}
