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
	"github.com/meshbench/meshbench/proxy/metrics"
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
}

// routeState is a compiled route: its destination, its header edits and
// its series.
type routeState struct {
	cluster *cluster
	timeout time.Duration // <= 0: none
	add     []headerKV
	remove  []string
	m       *metrics.Route
}

type headerKV struct{ key, value string }

func newRouteState(rc *config.Route, c *cluster, m *metrics.Route) *routeState {
	rs := &routeState{cluster: c, timeout: rc.Timeout.D(), m: m}
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
	isGRPC := route.IsGRPC(r)
	i := h.table.Match(r)
	if i < 0 {
		h.noRoute.Request()
		st, gs := writeError(w, isGRPC, http.StatusNotFound, grpcUnimplemented, "no route")
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
	h1 := c.h1ForMajor(r.ProtoMajor)
	// The HTTP/1.1 client enforces the deadline on its connection; the
	// HTTP/2 Transport needs it in the context.
	ctx := r.Context()
	if h1 == nil && !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}

	var info balancer.PickInfo
	if c.hashed {
		if c.hashHeader != "" {
			info.Key = r.Header.Get(c.hashHeader)
		} else {
			info.Key = clientIP(r.RemoteAddr)
		}
	}
	pick, err := c.picker.Pick(info)
	if err != nil {
		o.status, o.grpcStatus = writeError(w, isGRPC, http.StatusServiceUnavailable, grpcUnavailable, "no healthy upstream")
		return o
	}
	c.requests[pick.Endpoint.Meta.(int)].Inc()

	out := r.WithContext(ctx)
	out.URL = &url.URL{Scheme: "http", Host: pick.Endpoint.Addr, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	out.RequestURI = ""
	out.Close = false
	out.Header = h.upstreamHeader(r, rs, clientTimeout, deadline)
	if r.Body == http.NoBody {
		out.Body = nil
	} else if r.ProtoMajor == 1 {
		// Let the upstream's response stream back while the request body
		// is still arriving.
		_ = http.NewResponseController(w).EnableFullDuplex()
	}

	var resp *http.Response
	if h1 != nil {
		resp, err = h1.Do(ctx, out, deadline)
	} else {
		resp, err = c.h2c.RoundTrip(out)
	}
	if err != nil {
		o = h.upstreamFailure(w, r, ctx, isGRPC, err)
		finishPick(pick, err, 0, start)
		return o
	}
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
		finishPick(pick, err, resp.StatusCode, start)
		switch {
		case r.Context().Err() != nil || errors.Is(err, errDownstreamWrite):
			o.status = statusClientClosed
			if isGRPC {
				o.grpcStatus = grpcCanceled
			}
		case isGRPC:
			// End the stream with a status the client can act on.
			code, msg := grpcUnavailable, "upstream reset the stream"
			if timedOut(ctx, err) {
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
	finishPick(pick, nil, resp.StatusCode, start)
	return o
}

// finishPick tells the balancer how a picked request ended.
func finishPick(pick balancer.Result, err error, status int, start time.Time) {
	if pick.Done != nil {
		pick.Done(balancer.DoneInfo{Err: err, StatusCode: status, Latency: time.Since(start)})
	}
}

// upstreamFailure answers a request that got no response from upstream.
func (h *handler) upstreamFailure(w http.ResponseWriter, r *http.Request, ctx context.Context, isGRPC bool, err error) outcome {
	o := outcome{grpcStatus: -1}
	var oe *net.OpError
	switch {
	case r.Context().Err() != nil:
		// The client is gone; there is nobody to answer.
		o.status = statusClientClosed
		if isGRPC {
			o.grpcStatus = grpcCanceled
		}
		return o
	case timedOut(ctx, err):
		o.status, o.grpcStatus = writeError(w, isGRPC, http.StatusGatewayTimeout, grpcDeadlineExceeded, "upstream request timeout")
	case errors.As(err, &oe) && oe.Op == "dial":
		o.status, o.grpcStatus = writeError(w, isGRPC, http.StatusServiceUnavailable, grpcUnavailable, "upstream connect error")
	default:
		o.status, o.grpcStatus = writeError(w, isGRPC, http.StatusBadGateway, grpcUnavailable, "upstream reset or protocol error")
	}
	h.log.Debug("upstream request failed", "path", r.URL.Path, "status", o.status, "err", err)
	return o
}

var errDownstreamWrite = errors.New("writing to downstream")

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
// status (-1 for non-gRPC) written.
func writeError(w http.ResponseWriter, isGRPC bool, status, code int, msg string) (int, int) {
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
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
	return status, -1
}
