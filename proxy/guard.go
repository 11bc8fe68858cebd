package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"

	"golang.org/x/net/netutil"

	"github.com/meshbench/meshbench/proxy/config"
)

// The framing guard sits between a listener (cleartext, or TLS terminated
// by a tlsListener) and net/http's HTTP/1.1 server. It reads every request head whole before the server sees
// a byte of it and refuses, with 400, what net/http would accept but a
// proxy must not forward: request framing that two parsers could read
// differently (Content-Length with Transfer-Encoding, Transfer-Encoding in
// HTTP/1.0, several Content-Length fields), obs-fold, bare CR or LF line
// ends, several Host fields, and an absolute-form target whose authority
// disagrees with Host. It follows bodies (Content-Length and chunked) so
// that it checks the head of every request on a keep-alive connection, and
// steps aside for good when the connection turns out to be HTTP/2 with
// prior knowledge.
//
// A refused head is replaced by a request line net/http cannot parse, so
// the server itself answers "400 Bad Request" in order after the responses
// it owes and closes the connection; nothing of the refused request reaches
// the handler. Anything the guard lets through is then parsed by net/http
// as usual, so every check net/http makes still applies.

// HTTP/2 limits that have no setting of their own: the RFC 9113 default
// HPACK table and net/http's default largest frame.
const (
	h2HeaderTableSize  = 4096
	h2MaxReadFrameSize = 1 << 20
)

// limitListener caps the connections open at once from ln at n (no cap if
// n <= 0): Accept waits until one closes, so connections beyond the cap
// queue in the kernel's accept backlog.
func limitListener(ln net.Listener, n int) net.Listener {
	if n <= 0 {
		return ln
	}
	return netutil.LimitListener(ln, n)
}

// guard wraps a listener that serves HTTP/1.1, in cleartext or behind a
// tlsListener, in a framing guard; an h2c-only listener has no HTTP/1.1 to
// guard.
func guard(ln net.Listener, lc *config.Listener) net.Listener {
	if lc.Protocol == config.ProtoH2C {
		return ln
	}
	return newGuardListener(ln, lc.Limits.MaxHeaderBytes, lc.Protocol != config.ProtoHTTP1)
}

// guardListener wraps the connections of a cleartext HTTP/1.1 listener in
// a framing guard.
type guardListener struct {
	net.Listener
	// maxHead is how many bytes of an unfinished head are held back. It is
	// above net/http's own limit (MaxHeaderBytes plus 4096), so an
	// oversized head released to the server still gets its 431.
	maxHead int
	// h2c lets the first head be the HTTP/2 connection preface.
	h2c  bool
	bufs sync.Pool
}

// newGuardListener wraps ln; maxHeaderBytes is the server's MaxHeaderBytes.
func newGuardListener(ln net.Listener, maxHeaderBytes int, h2c bool) *guardListener {
	if maxHeaderBytes <= 0 {
		maxHeaderBytes = http.DefaultMaxHeaderBytes
	}
	return &guardListener{Listener: ln, maxHead: maxHeaderBytes + 4096 + 1, h2c: h2c,
		bufs: sync.Pool{New: func() any { b := make([]byte, guardBufSize); return &b }}}
}

const guardBufSize = 4 << 10

// Accept wraps the next connection.
func (l *guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	st := tlsState(c)
	if st != nil && st.NegotiatedProtocol == "h2" {
		// ALPN chose HTTP/2: the connection must open with its preface,
		// and is never read as HTTP/1.1.
		return &prefaceConn{Conn: c}, nil
	}
	// Over TLS, HTTP/2 is chosen by ALPN only, never by a preface sent on
	// an HTTP/1.1 connection.
	return &guardConn{Conn: c, l: l, first: true, h2c: l.h2c && st == nil}, nil
}

// errBadPreface ends a connection that negotiated h2 and did not open with
// the HTTP/2 client preface (RFC 9113 §3.4: it is closed).
var errBadPreface = errors.New("h2 connection without the client preface")

// http2ClientPreface opens every HTTP/2 connection (RFC 9113 §3.4).
const http2ClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// prefaceConn checks that a connection opens with the HTTP/2 client
// preface, then passes its bytes through.
type prefaceConn struct {
	net.Conn
	checked bool
	pending []byte
}

// NetConn returns the connection read from.
func (c *prefaceConn) NetConn() net.Conn { return c.Conn }

func (c *prefaceConn) Read(p []byte) (int, error) {
	if !c.checked {
		buf := make([]byte, len(http2ClientPreface))
		if _, err := io.ReadFull(c.Conn, buf); err != nil {
			return 0, err
		}
		if string(buf) != http2ClientPreface {
			c.Conn.Close()
			return 0, errBadPreface
		}
		c.checked, c.pending = true, buf
	}
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

type guardMode int

const (
	gHead      guardMode = iota // reading a request head
	gBody                       // left bytes of a Content-Length body
	gChunkLine                  // reading a chunk-size line
	gChunkData                  // left bytes of chunk data
	gChunkEnd                   // the CRLF after chunk data
	gTrailer                    // the trailer section after the last chunk
	gPass                       // HTTP/2: bytes pass untouched
	gDead                       // nothing more is read: out, then err
)

// errBadChunked ends a request body whose chunked framing is malformed.
var errBadChunked = errors.New("malformed chunked request body")

// guardConn is one guarded connection. Read is called by one goroutine at
// a time (net/http's connection reader), so it needs no lock.
type guardConn struct {
	net.Conn
	l       *guardListener
	first   bool // no head seen yet
	h2c     bool // the first head may be the HTTP/2 preface
	mode    guardMode
	left    int64   // gBody, gChunkData: bytes left
	in      []byte  // read from the connection, not yet checked
	buf     *[]byte // pooled backing array of in, or nil
	scanned int     // bytes of in already searched for a line end
	out     []byte  // checked, not yet returned
	err     error   // returned once out is drained in gDead
	heads   int     // request heads let through
}

// NetConn returns the connection the guard reads from (a *tls.Conn on a
// TLS listener).
func (c *guardConn) NetConn() net.Conn { return c.Conn }

// Read returns checked bytes.
func (c *guardConn) Read(p []byte) (int, error) {
	for {
		if len(c.out) > 0 {
			n := copy(p, c.out)
			c.out = c.out[n:]
			if len(c.out) == 0 && len(c.in) == 0 {
				c.release()
			}
			return n, nil
		}
		if c.mode == gDead {
			return 0, c.err
		}
		if len(c.in) == 0 {
			switch c.mode {
			case gPass:
				return c.Conn.Read(p)
			case gBody:
				// Body bytes need no look: read them in place.
				if int64(len(p)) > c.left {
					p = p[:c.left]
				}
				n, err := c.Conn.Read(p)
				if c.left -= int64(n); c.left == 0 {
					c.mode = gHead
				}
				return n, err
			}
		}
		if len(c.in) > 0 && c.process() {
			continue
		}
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
}

// fill reads more of the connection into in.
func (c *guardConn) fill() error {
	if c.buf == nil {
		c.buf = c.l.bufs.Get().(*[]byte)
		c.in = (*c.buf)[:0]
	}
	if cap(c.in)-len(c.in) < 512 && cap(*c.buf) == guardBufSize && len(c.in) <= guardBufSize/2 {
		// Move the unchecked bytes back to the front of the array.
		c.in = (*c.buf)[:copy(*c.buf, c.in)]
	}
	if cap(c.in)-len(c.in) < 512 {
		// Move the unchecked bytes to a bigger array.
		nb := make([]byte, len(c.in), max(guardBufSize, 2*len(c.in)))
		copy(nb, c.in)
		c.in, c.buf = nb, &nb
	}
	n, err := c.Conn.Read(c.in[len(c.in):cap(c.in)])
	c.in = c.in[:len(c.in)+n]
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// release returns the read buffer to the pool once nothing refers to it.
func (c *guardConn) release() {
	if c.buf != nil && cap(*c.buf) == guardBufSize {
		c.l.bufs.Put(c.buf)
	}
	c.buf, c.in, c.out, c.scanned = nil, nil, nil, 0
}

// process checks what it can of in, moving it to out. It reports whether
// it made progress; false means more input is needed.
func (c *guardConn) process() bool {
	k := 0 // bytes of in checked and released
	for k < len(c.in) {
		rest := c.in[k:]
		switch c.mode {
		case gPass:
			k = len(c.in)
		case gBody, gChunkData:
			n := int(min(int64(len(rest)), c.left))
			k += n
			if c.left -= int64(n); c.left == 0 {
				if c.mode == gBody {
					c.mode = gHead
				} else {
					c.mode = gChunkEnd
				}
			}
		case gChunkEnd:
			if len(rest) < 2 {
				return c.emit(k)
			}
			if rest[0] != '\r' || rest[1] != '\n' {
				return c.kill(k, errBadChunked)
			}
			k += 2
			c.mode = gChunkLine
		case gChunkLine:
			end, bad := c.lineEnd(rest, false)
			if bad || end < 0 && len(rest) > guardBufSize {
				return c.kill(k, errBadChunked)
			}
			if end < 0 {
				return c.emit(k)
			}
			size, ok := parseChunkSize(rest[:end-2])
			if !ok {
				return c.kill(k, errBadChunked)
			}
			k += end
			if size == 0 {
				c.mode = gTrailer
			} else {
				c.mode, c.left = gChunkData, size
			}
		case gTrailer:
			if len(rest) >= 2 && rest[0] == '\r' && rest[1] == '\n' {
				k += 2
				c.mode = gHead
				continue
			}
			end, bad := c.lineEnd(rest, true)
			if bad || end < 0 && len(rest) > c.l.maxHead {
				return c.kill(k, errBadChunked)
			}
			if end < 0 {
				return c.emit(k)
			}
			k += end
			c.mode = gHead
		case gHead:
			end, bad := c.lineEnd(rest, true)
			reason := ""
			switch {
			case bad:
				reason = "bare-CR-or-LF"
			case end < 0 && len(rest) > c.l.maxHead:
				// Let the server see more than its limit: it answers 431.
				c.out, c.in, c.mode, c.err = c.in, nil, gDead, io.EOF
				return true
			case end < 0:
				return c.emit(k)
			default:
				var next guardMode
				var left int64
				next, left, reason = c.checkHead(rest[:end])
				if reason == "" {
					k += end
					c.first = false
					c.heads++
					c.mode, c.left = next, left
					if next == gDead {
						// The server refuses this one itself; read nothing after it.
						c.in, c.err = c.in[:k], io.EOF
						return c.emit(k)
					}
					continue
				}
			}
			if k > 0 {
				// Hand over the requests before this one first.
				return c.emit(k)
			}
			c.out = []byte("meshproxy-refused:" + reason + "\r\n\r\n")
			c.in, c.mode, c.err = nil, gDead, io.EOF
			return true
		case gDead:
			return c.emit(k)
		}
	}
	return c.emit(k)
}

// emit moves the first k bytes of in to out.
func (c *guardConn) emit(k int) bool {
	if k == 0 {
		return false
	}
	c.out = c.in[:k:k]
	c.in = c.in[k:]
	return true
}

// kill releases the first k bytes of in and ends the connection's input
// with err: the body being read is malformed.
func (c *guardConn) kill(k int, err error) bool {
	c.out, c.in, c.mode, c.err = c.in[:k:k], nil, gDead, err
	return true
}

// lineEnd finds the end of a line (double is false) or of a block of lines
// ending in an empty one (double is true) at the start of b, returning the
// index just past the final CRLF, or -1 if b holds no end yet. bad reports
// a CR not followed by LF or an LF not preceded by CR. The search resumes
// where the previous call on the same bytes left off.
func (c *guardConn) lineEnd(b []byte, double bool) (end int, bad bool) {
	for i := c.scanned; i < len(b); i++ {
		switch b[i] {
		case '\r':
			if i+1 < len(b) && b[i+1] != '\n' {
				return -1, true
			}
		case '\n':
			if i == 0 || b[i-1] != '\r' {
				return -1, true
			}
			if !double || i >= 3 && b[i-2] == '\n' {
				c.scanned = 0
				return i + 1, false
			}
		}
	}
	// Resume before a CR that may still be followed by LF.
	c.scanned = max(0, len(b)-1)
	return -1, false
}

// checkHead checks a complete request head (ending in CRLF CRLF) and
// returns the framing of its body, or why it is refused.
func (c *guardConn) checkHead(head []byte) (next guardMode, left int64, reason string) {
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	method, after, ok1 := bytes.Cut(line, []byte(" "))
	target, proto, ok2 := bytes.Cut(after, []byte(" "))
	if !ok1 || !ok2 || len(method) == 0 || len(target) == 0 {
		return 0, 0, "malformed-request-line"
	}
	if c.first && c.h2c && string(line) == "PRI * HTTP/2.0" && len(rest) == 2 {
		return gPass, 0, ""
	}
	var host, cl, te []byte
	hosts, cls, tes := 0, 0, 0
	for len(rest) > 2 {
		var field []byte
		field, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		if field[0] == ' ' || field[0] == '\t' {
			return 0, 0, "obs-fold"
		}
		name, value, ok := bytes.Cut(field, []byte(":"))
		if !ok || !validFieldName(name) {
			return 0, 0, "invalid-header-name"
		}
		value = bytes.Trim(value, " \t")
		for _, b := range value {
			if b < ' ' && b != '\t' || b == 0x7f {
				return 0, 0, "invalid-header-value"
			}
		}
		switch {
		case bytes.EqualFold(name, []byte("Host")):
			host, hosts = value, hosts+1
		case bytes.EqualFold(name, []byte("Content-Length")):
			cl, cls = value, cls+1
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			te, tes = value, tes+1
		}
	}
	if hosts > 1 {
		return 0, 0, "more-than-one-Host"
	}
	if len(target) > 0 && target[0] != '/' && string(target) != "*" && string(method) != "CONNECT" {
		u, err := url.ParseRequestURI(string(target))
		if err == nil && hosts == 1 && !bytes.EqualFold([]byte(u.Host), host) {
			return 0, 0, "absolute-form-target-and-Host-differ"
		}
	}
	switch {
	case tes > 0 && string(proto) != "HTTP/1.1":
		return 0, 0, "Transfer-Encoding-outside-HTTP/1.1"
	case tes > 0 && cls > 0:
		return 0, 0, "both-Content-Length-and-Transfer-Encoding"
	case tes > 1 || tes == 1 && !bytes.EqualFold(te, []byte("chunked")):
		// net/http answers 501 and closes; nothing after it is read.
		return gDead, 0, ""
	case tes == 1:
		return gChunkLine, 0, ""
	case cls > 1:
		return 0, 0, "more-than-one-Content-Length"
	case cls == 1:
		n, ok := parseDecimal(cl)
		if !ok {
			return 0, 0, "invalid-Content-Length"
		}
		if n > 0 {
			return gBody, n, ""
		}
	}
	if string(proto) != "HTTP/1.1" && string(proto) != "HTTP/1.0" {
		// net/http refuses the version and closes.
		return gDead, 0, ""
	}
	return gHead, 0, ""
}

// validFieldName reports whether b is an RFC 9110 token.
func validFieldName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte("\"(),/:;<=>?@[\\]{}"), c) >= 0 {
			return false
		}
	}
	return true
}

// parseDecimal parses a Content-Length: 1 to 18 digits, nothing else.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseChunkSize parses a chunk-size line without its CRLF: 1 to 15 hex
// digits, then optionally ";" and extensions. It is stricter than
// net/http's reader, never looser, so both agree on where a chunk ends.
func parseChunkSize(b []byte) (int64, bool) {
	b, _, _ = bytes.Cut(b, []byte(";"))
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}
