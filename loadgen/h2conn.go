package loadgen

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The HTTP/2 client of the h2c and h2 loads: one connection shared by the
// workers of a connection slot, each worker with one stream at a time. It
// is built on x/net/http2's Framer and HPACK codec rather than net/http's
// Transport, which hands every request to a goroutine of its own, selects
// over channels per stream and flushes every request's HEADERS with a
// system call of its own: at 4 connections × 32 streams the Transport
// needed about 12 µs of CPU per request where h2load needs 2. Here a
// worker encodes and writes its frames under the connection's write lock,
// and the last of the workers queued for that lock flushes for all of them;
// one goroutine per connection reads frames and completes streams.

// Flow-control windows the client grants: large, so that responses stream
// without waiting for WINDOW_UPDATEs, and replenished once half is used.
const (
	h2StreamWindow = 4 << 20
	h2ConnWindow   = 1 << 30
)

var errH2Closed = errors.New("http2: connection closed")

// errRefused marks a stream the server did not process (above a GOAWAY's
// last stream, or reset with REFUSED_STREAM): it is safe to send again.
var errRefused = errors.New("http2: stream refused by the server")

// h2Result is how a stream ended.
type h2Result struct {
	status, backend string
	err             error
}

// h2Stream is one worker's stream, reused for each of its requests.
type h2Stream struct {
	id      uint32
	done    chan h2Result // buffered 1
	status  string
	backend string
	headers bool // the response header arrived
	unacked int  // DATA bytes received since the last stream WINDOW_UPDATE
	// sendWindow is what the peer lets this stream send (guarded by
	// h2Conn.wmu).
	sendWindow int64
}

// h2Conn is one HTTP/2 connection and its read loop.
type h2Conn struct {
	nc net.Conn
	bw *bufio.Writer
	fr *http2.Framer

	// wmu orders frame writes; waiting counts the writers queued for it
	// (the last one flushes).
	wmu     sync.Mutex
	waiting atomic.Int32
	henc    *hpack.Encoder
	hbuf    bytes.Buffer
	nextID  uint32
	// Send-side flow control and limits, from the peer's SETTINGS and
	// WINDOW_UPDATEs; guarded by wmu, waited for on sendCond.
	connSend    int64
	initialSend int64
	maxFrame    int
	sendCond    *sync.Cond
	maxStreams  uint32
	active      uint32
	streamsCond *sync.Cond
	connUnacked int
	goneAway    bool
	closed      bool
	// usable is false once the connection closed, was told GOAWAY or ran
	// out of stream IDs: what h2Pool.conn reads without a lock.
	usable        atomic.Bool
	closeErr      error
	streamsByID   map[uint32]*h2Stream // guarded by wmu
	readLoopEnded chan struct{}
}

// h2Dialer opens an HTTP/2 connection: h2c with prior knowledge, or TLS
// with ALPN h2.
type h2Dialer struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	addr string
	tls  bool
}

// h2Pool is one connection slot: its connection, dialled on first use and
// again after it failed or the server sent GOAWAY.
type h2Pool struct {
	d   h2Dialer
	cur atomic.Pointer[h2Conn] // the connection requests go to
	mu  sync.Mutex             // serialises dialling and guards c and old
	c   *h2Conn
	old []*h2Conn // replaced connections, whose last streams may still run
}

// conn returns the slot's usable connection, dialling one if there is
// none. Every request calls it: the usual case takes no lock.
func (p *h2Pool) conn(ctx context.Context) (*h2Conn, error) {
	if c := p.cur.Load(); c != nil && c.usable.Load() {
		return c, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.c; c != nil {
		if c.usable.Load() {
			return c, nil // another worker dialled meanwhile
		}
		// Streams in flight on it finish; it closes with the pool at the
		// latest.
		p.old = append(p.old, c)
	}
	c, err := dialH2(ctx, p.d)
	if err != nil {
		return nil, err
	}
	p.c = c
	p.cur.Store(c)
	return c, nil
}

func (p *h2Pool) close() {
	p.mu.Lock()
	conns := p.old
	if p.c != nil {
		conns = append(conns, p.c)
	}
	p.c, p.old = nil, nil
	p.cur.Store(nil)
	p.mu.Unlock()
	for _, c := range conns {
		c.shut(errH2Closed)
		<-c.readLoopEnded
	}
}

func dialH2(ctx context.Context, d h2Dialer) (*h2Conn, error) {
	nc, err := d.dial(ctx, "tcp", d.addr)
	if err != nil {
		return nil, err
	}
	if err := checkALPN(nc, d.tls); err != nil {
		nc.Close()
		return nil, err
	}
	c := &h2Conn{nc: nc, bw: bufio.NewWriterSize(nc, 32<<10), nextID: 1, connSend: 65535, initialSend: 65535,
		maxFrame: 16384, maxStreams: 100, streamsByID: map[uint32]*h2Stream{}, readLoopEnded: make(chan struct{})}
	c.usable.Store(true)
	c.sendCond = sync.NewCond(&c.wmu)
	c.streamsCond = sync.NewCond(&c.wmu)
	c.henc = hpack.NewEncoder(&c.hbuf)
	c.fr = http2.NewFramer(c.bw, bufio.NewReaderSize(nc, 32<<10))
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = 1 << 20
	// The preface, our SETTINGS and the connection window, in one write.
	if _, err := c.bw.WriteString(http2.ClientPreface); err == nil {
		err = c.fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 0},
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2StreamWindow},
			http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: 1 << 20})
		if err == nil {
			err = c.fr.WriteWindowUpdate(0, h2ConnWindow-65535)
		}
		if err == nil {
			err = c.bw.Flush()
		}
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("starting HTTP/2: %w", err)
		}
	}
	go c.readLoop()
	return c, nil
}

// checkALPN makes sure a TLS connection negotiated h2.
func checkALPN(nc net.Conn, isTLS bool) error {
	if !isTLS {
		return nil
	}
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return errors.New("not a TLS connection")
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		return fmt.Errorf("the server negotiated %q, not h2 (ALPN)", p)
	}
	return nil
}

// shut marks the connection closed with err, fails every stream in flight
// and closes the socket.
func (c *h2Conn) shut(err error) {
	c.wmu.Lock()
	if c.closed {
		c.wmu.Unlock()
		return
	}
	c.closed, c.closeErr = true, err
	c.usable.Store(false)
	streams := c.streamsByID
	c.streamsByID = map[uint32]*h2Stream{}
	c.sendCond.Broadcast()
	c.streamsCond.Broadcast()
	c.wmu.Unlock()
	for _, st := range streams {
		st.done <- h2Result{err: err}
	}
	c.nc.Close()
}

// flushIfLast flushes when no other writer is queued for wmu (left, what
// waiting.Add(-1) returned, is 0): the last one flushes for all. Called
// with wmu held.
func (c *h2Conn) flushIfLast(left int32) error {
	if left == 0 {
		return c.bw.Flush()
	}
	return nil
}

// h2Request is a worker's prepared request.
type h2Request struct {
	fields []hpack.HeaderField
	body   []byte
}

func newH2Request(t *httpRequestTemplate, scheme string) h2Request {
	authority := t.host
	if authority == "" {
		authority = t.url.Host
	}
	fields := []hpack.HeaderField{
		{Name: ":method", Value: t.method}, {Name: ":scheme", Value: scheme},
		{Name: ":authority", Value: authority}, {Name: ":path", Value: t.url.RequestURI()},
	}
	for k, vv := range t.header {
		lk := strings.ToLower(k)
		switch lk {
		case "host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "content-length":
			continue
		}
		for _, v := range vv {
			fields = append(fields, hpack.HeaderField{Name: lk, Value: v})
		}
	}
	if len(t.body) > 0 {
		fields = append(fields, hpack.HeaderField{Name: "content-length", Value: fmt.Sprint(len(t.body))})
	}
	return h2Request{fields: fields, body: t.body}
}

// start opens st on c with req's HEADERS (and body), or fails.
func (c *h2Conn) start(st *h2Stream, req *h2Request) error {
	c.waiting.Add(1)
	c.wmu.Lock()
	for !c.closed && !c.goneAway && c.active >= c.maxStreams {
		c.streamsCond.Wait()
	}
	if c.closed || c.goneAway || c.nextID > 1<<31-1 {
		left := c.waiting.Add(-1)
		_ = c.flushIfLast(left)
		err := c.closeErr
		c.wmu.Unlock()
		// Nothing of this request was sent: it may go to a new connection.
		return fmt.Errorf("%w: %w", errRefused, cmp.Or(err, errH2Closed))
	}
	st.id = c.nextID
	c.nextID += 2
	if c.nextID >= 1<<31-2 {
		c.usable.Store(false) // stream IDs run out: the next requests go to a new connection
	}
	st.status, st.backend, st.headers, st.unacked = "", "", false, 0
	st.sendWindow = c.initialSend
	c.streamsByID[st.id] = st
	c.active++
	c.hbuf.Reset()
	for _, f := range req.fields {
		_ = c.henc.WriteField(f)
	}
	err := c.writeHeaderBlock(st.id, c.hbuf.Bytes(), len(req.body) == 0)
	if err == nil && len(req.body) > 0 {
		err = c.writeBody(st, req.body)
	}
	left := c.waiting.Add(-1)
	if err == nil {
		err = c.flushIfLast(left)
	}
	c.wmu.Unlock()
	if err != nil {
		c.shut(err)
	}
	return err
}

// writeHeaderBlock writes a header block as HEADERS and CONTINUATION
// frames of at most maxFrame bytes. Called with wmu held.
func (c *h2Conn) writeHeaderBlock(id uint32, block []byte, endStream bool) error {
	first := true
	for first || len(block) > 0 {
		n := min(len(block), c.maxFrame)
		frag := block[:n]
		block = block[n:]
		var err error
		if first {
			err = c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: endStream, EndHeaders: len(block) == 0})
			first = false
		} else {
			err = c.fr.WriteContinuation(id, len(block) == 0, frag)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeBody writes a request body as DATA frames within the peer's flow
// control windows, waiting for WINDOW_UPDATEs. Called with wmu held.
func (c *h2Conn) writeBody(st *h2Stream, body []byte) error {
	for len(body) > 0 {
		for !c.closed && (c.connSend <= 0 || st.sendWindow <= 0) {
			// Let the queued writers' frames out before waiting.
			if err := c.bw.Flush(); err != nil {
				return err
			}
			c.sendCond.Wait()
		}
		if c.closed {
			return cmp.Or(c.closeErr, errH2Closed)
		}
		n := int64(min(len(body), c.maxFrame))
		n = min(n, c.connSend, st.sendWindow)
		if err := c.fr.WriteData(st.id, int(n) == len(body), body[:n]); err != nil {
			return err
		}
		c.connSend -= n
		st.sendWindow -= n
		body = body[n:]
	}
	return nil
}

// cancel resets a stream the worker gave up on (timeout, end of run).
func (c *h2Conn) cancel(st *h2Stream) {
	c.waiting.Add(1)
	c.wmu.Lock()
	_, open := c.streamsByID[st.id]
	if open {
		delete(c.streamsByID, st.id)
		c.active--
		c.streamsCond.Signal()
	}
	var err error
	if open && !c.closed {
		err = c.fr.WriteRSTStream(st.id, http2.ErrCodeCancel)
	}
	left := c.waiting.Add(-1)
	if err == nil && !c.closed {
		err = c.flushIfLast(left)
	}
	c.wmu.Unlock()
	if err != nil {
		c.shut(err)
	}
	if !open {
		// The read loop completed it meanwhile: take that result.
		<-st.done
	}
}

// finishLocked removes a completed stream, reporting whether it was still
// open. Called with wmu held; its result is sent after the unlock.
func (c *h2Conn) finishLocked(st *h2Stream) bool {
	if c.streamsByID[st.id] != st {
		return false
	}
	delete(c.streamsByID, st.id)
	c.active--
	c.streamsCond.Signal()
	return true
}

// readLoop reads frames until the connection fails, completing streams.
func (c *h2Conn) readLoop() {
	defer close(c.readLoopEnded)
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				c.endStream(se.StreamID, h2Result{err: se})
				continue
			}
			c.shut(err)
			return
		}
		if err := c.handle(f); err != nil {
			c.shut(err)
			return
		}
	}
}

// endStream completes stream id with res, if it is still open.
func (c *h2Conn) endStream(id uint32, res h2Result) {
	c.wmu.Lock()
	st := c.streamsByID[id]
	ok := st != nil && c.finishLocked(st)
	c.wmu.Unlock()
	if ok {
		st.done <- res
	}
}

// handle acts on one frame.
func (c *h2Conn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		// The stream's fields are read and written under wmu: a worker
		// that gave up on a stream reuses its h2Stream for the next one.
		c.wmu.Lock()
		st := c.streamsByID[f.StreamID]
		if st == nil {
			c.wmu.Unlock()
			return nil // a stream the worker cancelled
		}
		if !st.headers {
			status := f.PseudoValue("status")
			if len(status) == 3 && status[0] == '1' {
				c.wmu.Unlock()
				return nil // interim response
			}
			st.status, st.headers = status, true
			for _, hf := range f.RegularFields() {
				if hf.Name == "x-backend" {
					st.backend = hf.Value
				}
			}
		}
		ended := f.StreamEnded() && c.finishLocked(st)
		res := h2Result{status: st.status, backend: st.backend}
		c.wmu.Unlock()
		if ended {
			st.done <- res
		}
	case *http2.DataFrame:
		return c.data(f)
	case *http2.RSTStreamFrame:
		var err error = http2.StreamError{StreamID: f.StreamID, Code: f.ErrCode}
		if f.ErrCode == http2.ErrCodeRefusedStream {
			err = fmt.Errorf("%w: %v", errRefused, err)
		}
		c.endStream(f.StreamID, h2Result{err: err})
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		return c.queued(func() error {
			return c.applySettings(f)
		})
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		return c.queued(func() error { return c.fr.WritePing(true, f.Data) })
	case *http2.WindowUpdateFrame:
		c.wmu.Lock()
		if f.StreamID == 0 {
			c.connSend += int64(f.Increment)
		} else if st := c.streamsByID[f.StreamID]; st != nil {
			st.sendWindow += int64(f.Increment)
		}
		c.sendCond.Broadcast()
		c.wmu.Unlock()
	case *http2.GoAwayFrame:
		// Streams above the last one the server will process fail; the
		// rest finish, and new requests go to a new connection.
		c.wmu.Lock()
		c.goneAway = true
		c.usable.Store(false)
		var refused []*h2Stream
		for id, st := range c.streamsByID {
			if id > f.LastStreamID && c.finishLocked(st) {
				refused = append(refused, st)
			}
		}
		c.streamsCond.Broadcast()
		c.wmu.Unlock()
		for _, st := range refused {
			st.done <- h2Result{err: fmt.Errorf("%w: GOAWAY (%v) before stream %d", errRefused, f.ErrCode, st.id)}
		}
	}
	return nil
}

// queued runs write under wmu as one of the queued writers, flushing when
// it is the last of them.
func (c *h2Conn) queued(write func() error) error {
	c.waiting.Add(1)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	err := write()
	left := c.waiting.Add(-1)
	if err == nil {
		err = c.flushIfLast(left)
	}
	return err
}

// applySettings takes the peer's SETTINGS and acknowledges them. Called
// with wmu held.
func (c *h2Conn) applySettings(f *http2.SettingsFrame) error {
	err := f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingMaxConcurrentStreams:
			c.maxStreams = s.Val
			c.streamsCond.Broadcast()
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - c.initialSend
			c.initialSend = int64(s.Val)
			for _, st := range c.streamsByID {
				st.sendWindow += delta
			}
			c.sendCond.Broadcast()
		case http2.SettingMaxFrameSize:
			c.maxFrame = int(s.Val)
		case http2.SettingHeaderTableSize:
			c.henc.SetMaxDynamicTableSize(s.Val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.fr.WriteSettingsAck()
}

// data accounts for a DATA frame: its bytes go back to the connection's
// and the stream's windows once half of either is used, and END_STREAM
// completes the stream.
func (c *h2Conn) data(f *http2.DataFrame) error {
	n := int(f.Length)
	c.waiting.Add(1)
	c.wmu.Lock()
	var err error
	wrote := false
	c.connUnacked += n
	if c.connUnacked >= h2ConnWindow/2 {
		err = c.fr.WriteWindowUpdate(0, uint32(c.connUnacked))
		c.connUnacked, wrote = 0, true
	}
	st := c.streamsByID[f.StreamID]
	if st != nil && !f.StreamEnded() {
		st.unacked += n
		if st.unacked >= h2StreamWindow/2 && err == nil {
			err = c.fr.WriteWindowUpdate(f.StreamID, uint32(st.unacked))
			st.unacked, wrote = 0, true
		}
	}
	left := c.waiting.Add(-1)
	if err == nil && (wrote || left == 0) {
		err = c.flushIfLast(left)
	}
	ended := st != nil && f.StreamEnded() && c.finishLocked(st)
	var res h2Result
	if ended {
		res = h2Result{status: st.status, backend: st.backend}
	}
	c.wmu.Unlock()
	if ended {
		st.done <- res
	}
	return err
}

// h2Worker sends one request at a time on its slot's connection.
type h2Worker struct {
	pool    *h2Pool
	req     h2Request
	timeout time.Duration
	st      h2Stream
	timer   *time.Timer
}

func newH2Worker(pool *h2Pool, t *httpRequestTemplate, scheme string) *h2Worker {
	return &h2Worker{pool: pool, req: newH2Request(t, scheme), timeout: t.timeout, st: h2Stream{done: make(chan h2Result, 1)}}
}

func (w *h2Worker) do(ctx context.Context) outcome {
	// A stream the server refused unprocessed (it sent GOAWAY as the
	// request left, or REFUSED_STREAM) goes out once more, on a new
	// connection if the old one is going away.
	for try := 0; ; try++ {
		o, refused := w.once(ctx)
		if !refused || try > 0 || ctx.Err() != nil {
			return o
		}
	}
}

// once sends the request once; refused reports a stream the server did
// not process.
func (w *h2Worker) once(ctx context.Context) (o outcome, refused bool) {
	c, err := w.pool.conn(ctx)
	if err != nil {
		return outcome{errClass: classify(err)}, false
	}
	if err := c.start(&w.st, &w.req); err != nil {
		return outcome{errClass: classify(err)}, errors.Is(err, errRefused)
	}
	var expired <-chan time.Time
	if w.timeout > 0 {
		if w.timer == nil {
			w.timer = time.NewTimer(w.timeout)
		} else {
			w.timer.Reset(w.timeout)
		}
		expired = w.timer.C
		defer w.timer.Stop()
	}
	var res h2Result
	select {
	case res = <-w.st.done:
	case <-expired:
		c.cancel(&w.st)
		return outcome{errClass: "timeout"}, false
	case <-ctx.Done():
		c.cancel(&w.st)
		return outcome{errClass: classify(ctx.Err())}, false
	}
	if res.err != nil {
		return outcome{errClass: classify(res.err)}, errors.Is(res.err, errRefused)
	}
	o = outcome{backend: res.backend, status: res.status}
	if len(res.status) == 3 && res.status >= "400" {
		o.errClass = "http_" + res.status
	}
	return o, false
}
