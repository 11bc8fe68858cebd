package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
)

// chunkConn is a net.Conn whose reads return data step bytes at a time.
type chunkConn struct {
	net.Conn
	data []byte
	step int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.step)], c.data)
	c.data = c.data[n:]
	return n, nil
}

// FuzzFramingGuard runs arbitrary bytes, split into arbitrary reads,
// through the HTTP/1.1 framing guard. It must never panic or loop; what it
// lets through is a prefix of the input, possibly followed by the one
// refusal line.
func FuzzFramingGuard(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"), uint8(7), uint8(5), true)
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;ext\r\nabc\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), uint8(1), uint8(1), false)
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"), uint8(14), uint8(3), true)
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), uint8(200), uint8(64), false)
	f.Add([]byte("GET http://b/ HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n"), uint8(3), uint8(2), false)
	f.Fuzz(func(t *testing.T, in []byte, step, readSize uint8, h2c bool) {
		l := newGuardListener(nil, 256, h2c)
		c := &guardConn{Conn: &chunkConn{data: in, step: int(step) + 1}, l: l, first: true}
		var out []byte
		buf := make([]byte, int(readSize)+1)
		var err error
		for range 4 * (len(in) + 10) {
			var n int
			n, err = c.Read(buf)
			out = append(out, buf[:n]...)
			if err != nil {
				break
			}
		}
		if err == nil {
			t.Fatal("the guard kept returning data after its input ended")
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, errBadChunked) {
			t.Fatalf("unexpected error %v", err)
		}
		if c.mode != gPass {
			// net/http must find the requests where the guard did: no
			// more than the heads it let through, and all of them if
			// it reads the output to its end without error.
			br := bufio.NewReader(bytes.NewReader(out))
			n := 0
			var perr error
			for perr == nil {
				var req *http.Request
				if req, perr = http.ReadRequest(br); perr == nil {
					if _, perr = io.Copy(io.Discard, req.Body); perr == nil {
						n++
					}
				}
			}
			if n > c.heads || perr == io.EOF && n != c.heads {
				t.Fatalf("net/http read %d requests (then %v), the guard let %d heads through:\n%q", n, perr, c.heads, out)
			}
		}
		if i := bytes.Index(out, []byte("meshproxy-refused:")); i >= 0 {
			if !bytes.HasPrefix(in, out[:i]) || !bytes.HasSuffix(out, []byte("\r\n\r\n")) || bytes.Count(out[i:], []byte("\r\n")) != 2 {
				t.Fatalf("refusal is not one line after a prefix of the input: %q", out)
			}
		} else if !bytes.HasPrefix(in, out) {
			t.Fatalf("output is not a prefix of the input:\nin  %q\nout %q", in, out)
		}
	})
}
