package proxy

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2/hpack"

	"github.com/meshbench/meshbench/proxy/metrics"
)

// The HTTP/2 watcher sits on every downstream connection, above the framing
// guard and the TLS listener. A connection that opens with the HTTP/2
// client preface has its frames followed as they are read (headers only:
// type, flags, stream, length; header blocks are decoded for their size
// alone), and abuse that net/http's server absorbs without ever closing
// the connection is answered as nginx and Envoy answer it: a GOAWAY with
// ENHANCE_YOUR_CALM, then the connection closes. Abuse is
//
//   - rapid reset (CVE-2023-44487): at least h2ResetFloor streams reset
//     by the client, and at least half of the streams it opened;
//   - a SETTINGS flood: more than h2SettingsPerSecond SETTINGS frames (not
//     acknowledgements) within one second;
//   - a PING flood: more than h2PingStrikes PINGs (not acknowledgements)
//     with no response HEADERS or DATA written between them (grpc-go's
//     server rule: a client that pings while it is being answered, as
//     grpc-go's BDP estimation does, is not flooding);
//   - header lists over the listener's limit (each answered 431 by
//     net/http, HPACK bombs among them): h2TooLongMax of them.
//
// A connection that does not open with the preface (HTTP/1.1) passes
// through after its first 24 bytes are compared. The GOAWAY is written at
// a frame boundary of what the server writes, so it never splits one of
// the server's frames; after it the server's writes are dropped, its reads
// end, and the connection lingers up to h2CalmLinger, drained, before it
// closes, so that the client reads the GOAWAY rather than a reset.
const (
	h2ResetFloor        = 100
	h2SettingsPerSecond = 100
	h2PingStrikes       = 100
	h2TooLongMax        = 20
	h2CalmLinger        = time.Second
)

// h2 frame types and flags the watcher reads.
const (
	h2FrameData         = 0x0
	h2FrameHeaders      = 0x1
	h2FrameRSTStream    = 0x3
	h2FrameSettings     = 0x4
	h2FramePing         = 0x6
	h2FrameGoAway       = 0x7
	h2FrameContinuation = 0x9

	h2FlagAck        = 0x1
	h2FlagEndHeaders = 0x4
	h2FlagPadded     = 0x8
	h2FlagPriority   = 0x20

	h2ErrEnhanceYourCalm = 0xb
)

// h2WatchListener wraps every accepted connection in an h2Watch.
type h2WatchListener struct {
	net.Listener
	maxHeaderList int
	m             *metrics.Listener
}

func (l *h2WatchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &h2Watch{Conn: c, co: newCoalescer(c), maxHeaderList: l.maxHeaderList, m: l.m}, nil
}

// h2Watch is one watched connection. Read is called by one goroutine at a
// time (the server's reader); Write by several, under wmu.
type h2Watch struct {
	net.Conn
	// co gathers the server's writes once the connection is HTTP/2 (see
	// coalescer); HTTP/1.1 connections write directly.
	co            *coalescer
	maxHeaderList int
	m             *metrics.Listener

	// Read side.
	pre  int  // bytes of the preface matched
	pass bool // not HTTP/2: pass everything
	// isH2 is set by the reader once the whole preface matched; the
	// writers, on other goroutines, read it.
	isH2     atomic.Bool
	hdr      [9]byte
	hn       int // bytes of hdr filled
	length   int // payload length of the current frame
	off      int // payload bytes of it seen
	ftype    byte
	flags    byte
	padLen   int
	streams  int // client streams opened
	maxID    uint32
	resets   int
	settings int // SETTINGS in the current second
	second   time.Time
	// pings counts PINGs since the server last wrote HEADERS or DATA
	// (reset by the write side).
	pings   atomic.Int64
	tooLong int
	dec     *hpack.Decoder
	list    int  // size of the header list being decoded
	bad     bool // the header block failed to decode: stop decoding

	// Write side.
	wmu     sync.Mutex
	whdr    int // bytes of the current written frame header seen
	wh      [4]byte
	wleft   int    // payload bytes of the current written frame left
	calm    string // the abuse seen, once; "" before
	goAway  bool   // the GOAWAY went out
	calmed  atomic.Bool
	closing sync.Once
}

// NetConn returns the connection read from.
func (c *h2Watch) NetConn() net.Conn { return c.Conn }

func (c *h2Watch) Read(p []byte) (int, error) {
	if c.abused() {
		return 0, io.EOF
	}
	n, err := c.Conn.Read(p)
	if n > 0 && !c.pass {
		if reason := c.follow(p[:n]); reason != "" {
			c.abuse(reason)
		}
	}
	return n, err
}

func (c *h2Watch) abused() bool { return c.calmed.Load() }

// follow reads frames from b and returns the abuse they make, or "".
func (c *h2Watch) follow(b []byte) string {
	for len(b) > 0 {
		if c.pre < len(http2ClientPreface) {
			k := min(len(http2ClientPreface)-c.pre, len(b))
			if string(b[:k]) != http2ClientPreface[c.pre:c.pre+k] {
				c.pass = true
				return ""
			}
			c.pre += k
			b = b[k:]
			if c.pre == len(http2ClientPreface) {
				c.isH2.Store(true)
			}
			continue
		}
		if c.hn < len(c.hdr) {
			k := copy(c.hdr[c.hn:], b)
			c.hn += k
			b = b[k:]
			if c.hn < len(c.hdr) {
				return ""
			}
			if r := c.startFrame(); r != "" {
				return r
			}
			if c.length == 0 {
				if r := c.endFrame(); r != "" {
					return r
				}
			}
			continue
		}
		k := min(c.length-c.off, len(b))
		c.payload(b[:k])
		c.off += k
		b = b[k:]
		if c.off == c.length {
			if r := c.endFrame(); r != "" {
				return r
			}
		}
	}
	return ""
}

func (c *h2Watch) startFrame() string {
	c.length = int(c.hdr[0])<<16 | int(c.hdr[1])<<8 | int(c.hdr[2])
	c.ftype, c.flags = c.hdr[3], c.hdr[4]
	id := binary.BigEndian.Uint32(c.hdr[5:]) & (1<<31 - 1)
	c.off, c.padLen = 0, 0
	switch c.ftype {
	case h2FrameHeaders:
		if id%2 == 1 && id > c.maxID {
			c.maxID = id
			c.streams++
		}
		c.list, c.bad = 0, false
	case h2FrameRSTStream:
		c.resets++
		if c.resets >= h2ResetFloor && 2*c.resets >= c.streams {
			return "rapid_reset"
		}
	case h2FrameSettings:
		if c.flags&h2FlagAck != 0 {
			break
		}
		if now := time.Now(); now.Sub(c.second) > time.Second {
			c.second, c.settings = now, 0
		}
		c.settings++
		if c.settings > h2SettingsPerSecond {
			return "settings_flood"
		}
	case h2FramePing:
		if c.flags&h2FlagAck == 0 && c.pings.Add(1) > h2PingStrikes {
			return "ping_flood"
		}
	}
	return ""
}

// payload feeds the header block fragment of a HEADERS or CONTINUATION
// frame to the size-counting decoder, without padding and priority.
func (c *h2Watch) payload(b []byte) {
	if c.ftype != h2FrameHeaders && c.ftype != h2FrameContinuation || c.bad {
		return
	}
	start := 0
	if c.ftype == h2FrameHeaders {
		if c.flags&h2FlagPadded != 0 {
			if c.off == 0 && len(b) > 0 {
				c.padLen = int(b[0])
			}
			start++
		}
		if c.flags&h2FlagPriority != 0 {
			start += 5
		}
	}
	from := max(start-c.off, 0)
	to := min(c.length-c.padLen-c.off, len(b))
	if from >= to {
		return
	}
	if c.dec == nil {
		c.dec = hpack.NewDecoder(h2HeaderTableSize, func(f hpack.HeaderField) { c.list += int(f.Size()) })
	}
	if _, err := c.dec.Write(b[from:to]); err != nil {
		c.bad = true
	}
}

func (c *h2Watch) endFrame() string {
	c.hn = 0
	if c.ftype != h2FrameHeaders && c.ftype != h2FrameContinuation || c.flags&h2FlagEndHeaders == 0 || c.bad || c.dec == nil {
		return ""
	}
	if err := c.dec.Close(); err != nil {
		c.bad = true
		return ""
	}
	// net/http answers 431 past MaxHeaderBytes plus room for ten fields'
	// overhead (its SETTINGS_MAX_HEADER_LIST_SIZE).
	if c.list > c.maxHeaderList+10*32 {
		c.tooLong++
		if c.tooLong >= h2TooLongMax {
			return "header_list_too_long"
		}
	}
	return ""
}

// abuse records the first abuse and sends the GOAWAY as soon as what the
// server wrote ends on a frame boundary.
func (c *h2Watch) abuse(reason string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.calm != "" {
		return
	}
	c.calm = reason
	c.calmed.Store(true)
	if c.m != nil && c.m.Calmed != nil {
		c.m.Calmed(reason)
	}
	if c.whdr == 0 && c.wleft == 0 {
		c.sendGoAwayLocked()
	}
}

func (c *h2Watch) sendGoAwayLocked() {
	var f [17]byte
	f[2] = 8 // length
	f[3] = h2FrameGoAway
	binary.BigEndian.PutUint32(f[9:], c.maxID)
	binary.BigEndian.PutUint32(f[13:], h2ErrEnhanceYourCalm)
	c.goAway = true
	_ = c.Conn.SetWriteDeadline(time.Now().Add(h2CalmLinger))
	_, _ = c.co.Write(f[:])
}

// Write passes the server's bytes, following its frame boundaries so that
// a GOAWAY can go in between two frames; after the GOAWAY it drops them.
func (c *h2Watch) Write(p []byte) (int, error) {
	if !c.isH2.Load() {
		// Not (yet) HTTP/2 on the read side: a server writes nothing on
		// an HTTP/2 connection before the preface arrives.
		return c.Conn.Write(p)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.goAway {
		return len(p), nil
	}
	if c.calm == "" {
		c.boundary(p)
		return c.co.Write(p)
	}
	// A GOAWAY is due: write up to the next frame boundary, then it.
	i := c.boundary(p)
	n, err := c.co.Write(p[:i])
	if err != nil {
		return n, err
	}
	if c.whdr == 0 && c.wleft == 0 {
		c.sendGoAwayLocked()
	}
	return len(p), nil
}

// boundary advances the written-frame state over p and returns the length
// of p's prefix that ends at the first frame boundary when a GOAWAY is due
// (len(p) otherwise, or if no boundary falls in p).
func (c *h2Watch) boundary(p []byte) int {
	i := 0
	for i < len(p) {
		if c.calm != "" && c.whdr == 0 && c.wleft == 0 {
			return i
		}
		if c.wleft > 0 {
			k := min(c.wleft, len(p)-i)
			c.wleft -= k
			i += k
			continue
		}
		if c.whdr < len(c.wh) {
			c.wh[c.whdr] = p[i]
		}
		c.whdr++
		i++
		if c.whdr == 9 {
			c.whdr = 0
			c.wleft = int(c.wh[0])<<16 | int(c.wh[1])<<8 | int(c.wh[2])
			if t := c.wh[3]; t == h2FrameData || t == h2FrameHeaders {
				c.pings.Store(0)
			}
		}
	}
	return i
}

// Close closes the connection; after a GOAWAY it first lets the client
// read it: the write side is shut, what the client still sends is read
// and dropped for up to h2CalmLinger, then the connection closes.
func (c *h2Watch) Close() error {
	if !c.abused() {
		return c.co.Close()
	}
	c.closing.Do(func() {
		go func() {
			_ = c.co.CloseWrite()
			_ = c.Conn.SetReadDeadline(time.Now().Add(h2CalmLinger))
			_, _ = io.Copy(io.Discard, c.Conn)
			c.Conn.Close()
		}()
	})
	return nil
}

// closeWriter finds, under c's wrappers, a connection whose write side can
// be shut alone (TLS's close_notify, or TCP's FIN).
func closeWriter(c net.Conn) interface{ CloseWrite() error } {
	for c != nil {
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			return cw
		}
		nc, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = nc.NetConn()
	}
	return nil
}
