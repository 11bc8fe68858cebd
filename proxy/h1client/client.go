package h1client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Options configure a Client.
type Options struct {
	// Dial opens connections; it must honour ctx.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxIdlePerHost is how many idle connections are kept per endpoint.
	MaxIdlePerHost int
	// MaxConnsPerHost caps connections per endpoint; 0 means no cap.
	MaxConnsPerHost int
	// IdleTimeout closes connections idle this long; 0 means never.
	IdleTimeout time.Duration
	// ReadBufferSize and WriteBufferSize size each connection's buffers.
	ReadBufferSize, WriteBufferSize int
}

// Client is a pool of HTTP/1.1 connections keyed by the address dialed, the
// request URL's host: an endpoint, or a gateway that several endpoints
// share. It implements http.RoundTripper.
type Client struct {
	opts  Options
	mu    sync.Mutex
	hosts map[string]*host
}

type host struct {
	idle    []*conn      // most recently used last
	open    int          // connections dialled and not yet discarded
	waiters []chan *conn // requests waiting for a connection under the cap
	// settling counts connections whose response ended while their
	// request body was a moment from written whole (see settle): a
	// request that finds no idle connection waits for one of them
	// before it dials.
	settling int
}

// removeWaiter removes ch from the waiting requests, if it is there.
func (h *host) removeWaiter(ch chan *conn) {
	for i, w := range h.waiters {
		if w == ch {
			h.waiters = append(h.waiters[:i], h.waiters[i+1:]...)
			return
		}
	}
}

// popWaiter removes and returns the longest-waiting request, or nil.
func (h *host) popWaiter() chan *conn {
	if len(h.waiters) == 0 {
		return nil
	}
	w := h.waiters[0]
	h.waiters = h.waiters[1:]
	return w
}

type conn struct {
	nc       net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	addr     string
	lastUsed time.Time
	reused   bool
	// watched is closed when the idle watcher (see watch) has returned;
	// watchErr is what its read ended with. Nil while the connection is
	// not idle.
	watched  chan struct{}
	watchErr error
}

// aLongTimeAgo is a deadline in the past: it wakes a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// New returns a client with opts; zero buffer sizes default to 16 KiB.
func New(opts Options) *Client {
	if opts.Dial == nil {
		opts.Dial = (&net.Dialer{}).DialContext
	}
	if opts.ReadBufferSize <= 0 {
		opts.ReadBufferSize = 16 << 10
	}
	if opts.WriteBufferSize <= 0 {
		opts.WriteBufferSize = 16 << 10
	}
	return &Client{opts: opts, hosts: map[string]*host{}}
}

var errBodyAndRetry = errors.New("h1client: connection failed before a response")

// ErrRequestBody wraps the error of reading a request's body (a malformed
// chunk, a client that went away mid-body): the exchange is ended at once,
// its connection closed.
var ErrRequestBody = errors.New("reading the request body")

// RoundTrip sends req on a pooled connection to req.URL.Host and returns
// the response once its header has arrived. The response body streams from
// the connection; closing it early closes the connection. The request's
// context bounds the exchange, including the body.
func (c *Client) RoundTrip(req *http.Request) (*http.Response, error) {
	dl, _ := req.Context().Deadline()
	resp, err := c.Do(req.Context(), req, dl)
	if err != nil && !dl.IsZero() && errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, context.DeadlineExceeded
	}
	return resp, err
}

// Do is RoundTrip with the exchange bounded by deadline (zero for none) as
// well as by ctx. The deadline is enforced on the connection itself, which
// costs no timer or context of its own; its expiry is reported as an error
// that matches os.ErrDeadlineExceeded. The request's own context is not
// consulted.
func (c *Client) Do(ctx context.Context, req *http.Request, deadline time.Time) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		cn, err := c.get(ctx, req.URL.Host, deadline)
		if err != nil {
			return nil, err
		}
		if !deadline.IsZero() {
			cn.nc.SetDeadline(deadline)
		}
		resp, err := c.exchange(ctx, cn, req)
		if err == nil {
			return resp, nil
		}
		if errors.Is(err, errBodyAndRetry) && attempt == 0 && ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)) {
			continue
		}
		return nil, err
	}
}

// exchange writes req on cn and reads the response header. On error cn is
// closed; errBodyAndRetry wraps errors after which a bodiless request may be
// sent again.
func (c *Client) exchange(ctx context.Context, cn *conn, req *http.Request) (*http.Response, error) {
	stop := context.AfterFunc(ctx, func() { cn.nc.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		c.discard(cn)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	if err := writeHeader(cn.bw, req, hasBody); err != nil {
		return fail(fmt.Errorf("writing request header: %w", err))
	}
	var bodyDone chan error
	if hasBody {
		bodyDone = make(chan error, 1)
		go func() {
			err := writeBody(cn.bw, req.Body, req.ContentLength)
			if errors.Is(err, ErrRequestBody) {
				// The request cannot be completed: end the exchange now
				// rather than wait for a response the upstream owes only
				// to a whole request.
				cn.nc.SetDeadline(aLongTimeAgo)
			}
			bodyDone <- err
		}()
	} else if err := cn.bw.Flush(); err != nil {
		if cn.reused {
			return fail(fmt.Errorf("%w: %w", errBodyAndRetry, err))
		}
		return fail(fmt.Errorf("writing request: %w", err))
	}
	resp, err := readResponse(cn.br, req)
	if err != nil {
		if bodyDone != nil {
			select {
			case berr := <-bodyDone:
				if errors.Is(berr, ErrRequestBody) {
					return fail(berr)
				}
			default:
			}
		}
		if cn.reused && !hasBody && cn.br.Buffered() == 0 && isConnLoss(err) {
			return fail(fmt.Errorf("%w: %w", errBodyAndRetry, err))
		}
		return fail(fmt.Errorf("reading response: %w", err))
	}
	resp.Body = &body{rc: resp.Body, c: c, cn: cn, stop: stop, bodyDone: bodyDone, keep: !resp.Close && !req.Close}
	return resp, nil
}

func isConnLoss(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "connection reset")
}

// readResponse reads the final response, skipping 1xx interim responses.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			resp.Body.Close()
			return nil, errors.New("upstream switched protocols; upgrades are not proxied")
		case resp.StatusCode >= 100 && resp.StatusCode < 200:
			continue
		}
		return resp, nil
	}
}

// excluded are fields the client writes itself (framing, Host) or never
// forwards.
var excluded = map[string]bool{"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Trailer": true, "Connection": true}

// What CheckRequestLine refuses.
var (
	ErrMethod = errors.New("method is not a token")
	ErrTarget = errors.New("request target is empty or holds a space or a control character")
	ErrHost   = errors.New("host is not a Host field value")
)

// CheckRequestLine reports whether method, target and host can be written
// as they are on an HTTP/1.1 request line and Host field: a token, a
// target with no space or control character, a host without one either.
// The client refuses any other request, and a proxy checks what an
// HTTP/2 request's pseudo-headers would become with it.
func CheckRequestLine(method, target, host string) error {
	if !httpguts.ValidHeaderFieldName(method) {
		return fmt.Errorf("%w: %q", ErrMethod, method)
	}
	if target == "" {
		return ErrTarget
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("%w: %q", ErrTarget, target)
		}
	}
	if !httpguts.ValidHostHeader(host) || strings.ContainsAny(host, " \t") {
		return fmt.Errorf("%w: %q", ErrHost, host)
	}
	return nil
}

func writeHeader(bw *bufio.Writer, req *http.Request, hasBody bool) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	uri := req.URL.RequestURI()
	if err := CheckRequestLine(req.Method, uri, host); err != nil {
		return err
	}
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vv := range req.Header {
		if excluded[k] || k == "User-Agent" && len(vv) == 1 && vv[0] == "" {
			continue
		}
		for _, v := range vv {
			if strings.ContainsAny(v, "\r\n") {
				return fmt.Errorf("header %s: value contains a line break", k)
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	switch {
	case hasBody && req.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(req.ContentLength, 10))
		bw.WriteString("\r\n")
	case hasBody:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case req.Method == "POST" || req.Method == "PUT" || req.Method == "PATCH":
		bw.WriteString("Content-Length: 0\r\n")
	}
	if req.Close {
		bw.WriteString("Connection: close\r\n")
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// writeBody streams body: with Content-Length when known, else chunked,
// flushing after every read so a streaming body is not delayed.
func writeBody(bw *bufio.Writer, body io.ReadCloser, length int64) error {
	defer body.Close()
	buf := make([]byte, 32<<10)
	chunked := length <= 0
	var sent int64
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if chunked {
				bw.WriteString(strconv.FormatInt(int64(n), 16))
				bw.WriteString("\r\n")
			}
			bw.Write(buf[:n])
			if chunked {
				bw.WriteString("\r\n")
			}
			sent += int64(n)
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("%w: %w", ErrRequestBody, rerr)
		}
	}
	if !chunked && sent != length {
		return fmt.Errorf("%w: it was %d bytes, Content-Length said %d", ErrRequestBody, sent, length)
	}
	if chunked {
		bw.WriteString("0\r\n\r\n")
	}
	return bw.Flush()
}

// body is a response body that gives its connection back at the end.
type body struct {
	rc       io.ReadCloser
	c        *Client
	cn       *conn
	stop     func() bool
	bodyDone chan error
	keep     bool
	done     bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *body) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

// finish releases the connection: back to the pool when the exchange ended
// cleanly (complete is true, the request body already went out whole, the
// context watcher had not fired, and no side asked to close), else closed.
// It never waits for a request body still being written: that body comes
// from the downstream client, which may be slow or never finish.
func (b *body) finish(complete bool) {
	b.done = true
	b.rc.Close()
	stopped := b.stop()
	reuse := complete && b.keep && stopped
	if b.bodyDone != nil {
		select {
		case err := <-b.bodyDone:
			reuse = reuse && err == nil
		default:
			if reuse {
				// The response is whole but the writer has not yet said
				// that the request body is: usually it is a moment from
				// doing so. Settle the connection when it does, or close
				// it after a grace period.
				b.c.mu.Lock()
				b.c.hostOf(b.cn.addr).settling++
				b.c.mu.Unlock()
				go b.c.settle(b.cn, b.bodyDone)
				return
			}
		}
	}
	if reuse {
		b.c.put(b.cn)
	} else {
		b.c.discard(b.cn)
	}
}

// bodyGrace is how long a connection whose response ended waits for its
// request body to finish being written before it is closed instead of
// reused.
const bodyGrace = 250 * time.Millisecond

// settle returns cn to the pool once its request body is written whole, or
// closes it if that fails or takes longer than bodyGrace.
func (c *Client) settle(cn *conn, bodyDone <-chan error) {
	t := time.NewTimer(bodyGrace)
	defer t.Stop()
	var err error
	select {
	case err = <-bodyDone:
	case <-t.C:
		err = os.ErrDeadlineExceeded
	}
	c.mu.Lock()
	c.hostOf(cn.addr).settling--
	c.mu.Unlock()
	if err == nil {
		c.put(cn)
		return
	}
	c.discard(cn)
}

func (c *Client) hostOf(addr string) *host {
	h := c.hosts[addr]
	if h == nil {
		h = &host{}
		c.hosts[addr] = h
	}
	return h
}

// get returns an idle connection to addr or dials a new one. When
// MaxConnsPerHost connections are open it waits for one to be released:
// an idle connection is handed over directly, a closed one gives its slot.
func (c *Client) get(ctx context.Context, addr string, deadline time.Time) (*conn, error) {
	c.mu.Lock()
	h := c.hostOf(addr)
	now := time.Now()
	for len(h.idle) > 0 {
		cn := h.idle[len(h.idle)-1]
		h.idle[len(h.idle)-1] = nil
		h.idle = h.idle[:len(h.idle)-1]
		if c.opts.IdleTimeout > 0 && now.Sub(cn.lastUsed) > c.opts.IdleTimeout {
			cn.nc.Close()
			h.open--
			continue
		}
		c.mu.Unlock()
		if !c.unwatch(cn) {
			c.discard(cn)
			c.mu.Lock()
			h = c.hostOf(addr)
			continue
		}
		cn.reused = true
		return cn, nil
	}
	capped := c.opts.MaxConnsPerHost > 0 && h.open >= c.opts.MaxConnsPerHost
	if capped || h.settling > 0 {
		// Under the cap, wait for a connection or a slot; with a
		// connection settling, wait for it a moment rather than dial.
		ch := make(chan *conn, 1)
		h.waiters = append(h.waiters, ch)
		c.mu.Unlock()
		var expired, settled <-chan time.Time
		if !deadline.IsZero() {
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			expired = t.C
		}
		if !capped {
			t := time.NewTimer(bodyGrace)
			defer t.Stop()
			settled = t.C
		}
		var gaveUp error
		select {
		case cn := <-ch:
			if cn != nil {
				cn.reused = true
				return cn, nil
			}
			// A slot was freed for us (open already counts it): dial.
		case <-ctx.Done():
			gaveUp = ctx.Err()
		case <-expired:
			gaveUp = fmt.Errorf("waiting for a connection to %s: %w", addr, os.ErrDeadlineExceeded)
		case <-settled:
			// Nothing came back in time: dial a connection of our own,
			// unless one was handed over meanwhile.
			c.mu.Lock()
			h.removeWaiter(ch)
			select {
			case cn := <-ch:
				c.mu.Unlock()
				if cn != nil {
					cn.reused = true
					return cn, nil
				}
			default:
				h.open++
				c.mu.Unlock()
			}
		}
		if gaveUp != nil {
			c.mu.Lock()
			h.removeWaiter(ch)
			c.mu.Unlock()
			select {
			case cn := <-ch: // handed over as we gave up: pass it on
				if cn != nil {
					c.put(cn)
				} else {
					c.release(addr)
				}
			default:
			}
			return nil, gaveUp
		}
	} else {
		h.open++
		c.mu.Unlock()
	}
	nc, err := c.opts.Dial(ctx, "tcp", addr)
	if err != nil {
		c.release(addr)
		return nil, err
	}
	return &conn{nc: nc, addr: addr, br: bufio.NewReaderSize(nc, c.opts.ReadBufferSize), bw: bufio.NewWriterSize(nc, c.opts.WriteBufferSize)}, nil
}

// put returns a connection whose exchange ended cleanly: to a waiting
// request first, else to the idle pool, watched, else it is closed. A
// connection holding bytes nobody asked for (a response after the
// response, a body after a HEAD, 204 or 304) is closed: they would be
// read as the next request's response.
func (c *Client) put(cn *conn) {
	if cn.br.Buffered() > 0 {
		c.discard(cn)
		return
	}
	cn.nc.SetDeadline(time.Time{})
	cn.lastUsed = time.Now()
	c.mu.Lock()
	h := c.hostOf(cn.addr)
	if w := h.popWaiter(); w != nil {
		c.mu.Unlock()
		w <- cn
		return
	}
	if len(h.idle) < c.opts.MaxIdlePerHost {
		cn.watched = make(chan struct{})
		h.idle = append(h.idle, cn)
		c.mu.Unlock()
		go c.watch(cn)
		return
	}
	c.mu.Unlock()
	c.discard(cn)
}

// watch reads from an idle connection: whatever ends the read while the
// connection is still idle (bytes, the peer's close, an error) closes it.
// A request taking the connection ends the read itself (see unwatch).
func (c *Client) watch(cn *conn) {
	_, err := cn.br.Peek(1)
	cn.watchErr = err
	c.mu.Lock()
	h := c.hosts[cn.addr]
	idle := false
	if h != nil {
		for i, ic := range h.idle {
			if ic == cn {
				h.idle = append(h.idle[:i], h.idle[i+1:]...)
				idle = true
				break
			}
		}
	}
	c.mu.Unlock()
	close(cn.watched)
	if idle {
		c.discard(cn)
	}
}

// unwatch stops the watcher of a connection just taken from the idle pool
// and reports whether the connection is fit to carry a request: the
// watcher's read must have been ended by unwatch, with nothing read.
func (c *Client) unwatch(cn *conn) bool {
	cn.nc.SetReadDeadline(aLongTimeAgo)
	<-cn.watched
	cn.watched = nil
	cn.nc.SetReadDeadline(time.Time{})
	return cn.br.Buffered() == 0 && errors.Is(cn.watchErr, os.ErrDeadlineExceeded)
}

// discard closes cn and frees its slot.
func (c *Client) discard(cn *conn) {
	cn.nc.Close()
	c.release(cn.addr)
}

// release frees one connection slot of addr: a waiting request may dial in
// its place.
func (c *Client) release(addr string) {
	c.mu.Lock()
	h := c.hostOf(addr)
	if w := h.popWaiter(); w != nil {
		c.mu.Unlock()
		w <- nil
		return
	}
	h.open--
	c.mu.Unlock()
}

// CloseIdleConnections closes every idle connection.
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	var idle []*conn
	for _, h := range c.hosts {
		idle = append(idle, h.idle...)
		h.idle = nil
	}
	c.mu.Unlock()
	for _, cn := range idle {
		c.discard(cn)
	}
}

// CloseIdleFor closes the idle connections to addr, an endpoint (or a
// gateway) no longer used by its cluster, and forgets the address once no
// connection to it remains.
// Connections in use finish their exchange; released to the pool, they
// close after IdleTimeout like any idle connection.
func (c *Client) CloseIdleFor(addr string) {
	c.mu.Lock()
	h := c.hosts[addr]
	if h == nil {
		c.mu.Unlock()
		return
	}
	idle := h.idle
	h.idle = nil
	c.mu.Unlock()
	for _, cn := range idle {
		c.discard(cn)
	}
	c.mu.Lock()
	if h.open == 0 && len(h.waiters) == 0 {
		delete(c.hosts, addr)
	}
	c.mu.Unlock()
}
