package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"
)

// h1Conn is the HTTP/1.1 client of one worker: one keep-alive connection,
// the request serialised once, and a response parser that reads only what
// a load generator needs (status, framing, Connection, X-Backend). This is
// what fortio's fast client and wrk do: a generator must cost less per
// request than what it measures.
type h1Conn struct {
	dial    func(context.Context, string, string) (net.Conn, error)
	addr    string
	req     []byte // the whole request, header and body
	timeout time.Duration
	// closeEach opens a connection for every request (and asks the
	// server to close it).
	closeEach bool

	nc net.Conn
	br *bufio.Reader
}

func newH1Conn(t *httpRequestTemplate, dial func(context.Context, string, string) (net.Conn, error)) *h1Conn {
	var b bytes.Buffer
	b.WriteString(t.method + " " + t.url.RequestURI() + " HTTP/1.1\r\nHost: ")
	if t.host != "" {
		b.WriteString(t.host)
	} else {
		b.WriteString(t.url.Host)
	}
	b.WriteString("\r\n")
	keys := make([]string, 0, len(t.header))
	for k := range t.header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range t.header[k] {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	if t.closeEach {
		b.WriteString("Connection: close\r\n")
	}
	if len(t.body) > 0 || t.method == http.MethodPost || t.method == http.MethodPut || t.method == http.MethodPatch {
		b.WriteString("Content-Length: " + strconv.Itoa(len(t.body)) + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(t.body)
	return &h1Conn{dial: dial, addr: hostPort(t.url), req: b.Bytes(), timeout: t.timeout, closeEach: t.closeEach}
}

// hostPort is the address a URL's connections dial: its host and port,
// the scheme's port when it names none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

var errMalformed = errors.New("malformed HTTP/1.1 response")

func (c *h1Conn) do(ctx context.Context) outcome {
	if c.nc == nil {
		nc, err := c.dial(ctx, "tcp", c.addr)
		if err != nil {
			return outcome{errClass: classify(err)}
		}
		c.nc, c.br = nc, bufio.NewReaderSize(nc, 32<<10)
	}
	c.nc.SetDeadline(time.Now().Add(c.timeout))
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	o, keep, err := c.exchange()
	if err != nil {
		c.close()
		if errors.Is(err, errMalformed) {
			return outcome{errClass: "other"}
		}
		return outcome{errClass: classify(err)}
	}
	if !keep || c.closeEach {
		c.close()
	}
	return o
}

func (c *h1Conn) close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc, c.br = nil, nil
	}
}

// exchange writes the request and reads one response, skipping 1xx.
func (c *h1Conn) exchange() (o outcome, keep bool, err error) {
	if _, err := c.nc.Write(c.req); err != nil {
		return o, false, err
	}
	for {
		line, err := c.line()
		if err != nil {
			return o, false, err
		}
		// "HTTP/1.1 200 OK"
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
			return o, false, fmt.Errorf("%w: status line %q", errMalformed, line)
		}
		code, err := strconv.Atoi(string(line[9:12]))
		if err != nil {
			return o, false, fmt.Errorf("%w: status line %q", errMalformed, line)
		}
		keep = line[7] == '1'
		length, chunked := int64(-1), false
		for {
			h, err := c.line()
			if err != nil {
				return o, false, err
			}
			if len(h) == 0 {
				break
			}
			i := bytes.IndexByte(h, ':')
			if i <= 0 {
				return o, false, fmt.Errorf("%w: header %q", errMalformed, h)
			}
			k, v := h[:i], bytes.TrimSpace(h[i+1:])
			switch {
			case bytes.EqualFold(k, []byte("Content-Length")):
				if length, err = strconv.ParseInt(string(v), 10, 64); err != nil || length < 0 {
					return o, false, fmt.Errorf("%w: Content-Length %q", errMalformed, v)
				}
			case bytes.EqualFold(k, []byte("Transfer-Encoding")):
				chunked = bytes.EqualFold(v, []byte("chunked"))
			case bytes.EqualFold(k, []byte("Connection")):
				if bytes.EqualFold(v, []byte("close")) {
					keep = false
				} else if bytes.EqualFold(v, []byte("keep-alive")) {
					keep = true
				}
			case bytes.EqualFold(k, []byte("X-Backend")):
				o.backend = string(v)
			}
		}
		if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
			continue
		}
		o.status = strconv.Itoa(code)
		if code >= 400 {
			o.errClass = "http_" + o.status
		}
		switch {
		case c.noBody(code):
		case chunked:
			err = c.skipChunked()
		case length >= 0:
			_, err = c.br.Discard(int(length))
		default: // delimited by close
			_, err = io.Copy(io.Discard, c.br)
			keep = false
		}
		return o, keep, err
	}
}

func (c *h1Conn) noBody(code int) bool {
	return code == http.StatusNoContent || code == http.StatusNotModified || bytes.HasPrefix(c.req, []byte("HEAD "))
}

// line reads one CRLF-terminated line without its terminator. The slice is
// valid until the next read.
func (c *h1Conn) line() ([]byte, error) {
	l, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: line longer than %d bytes", errMalformed, c.br.Size())
		}
		return nil, err
	}
	return bytes.TrimRight(l, "\r\n"), nil
}

func (c *h1Conn) skipChunked() error {
	for {
		l, err := c.line()
		if err != nil {
			return err
		}
		if i := bytes.IndexByte(l, ';'); i >= 0 {
			l = l[:i]
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(l)), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: chunk size %q", errMalformed, l)
		}
		if n == 0 {
			for { // trailers, then the empty line
				t, err := c.line()
				if err != nil || len(t) == 0 {
					return err
				}
			}
		}
		if _, err := c.br.Discard(int(n) + 2); err != nil {
			return err
		}
	}
}
