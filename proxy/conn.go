package proxy

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/meshbench/meshbench/proxy/metrics"
)

// countingListener counts accepted connections and their bytes.
type countingListener struct {
	net.Listener
	m *metrics.Listener
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.m.Opened.Add(1)
	l.m.Open.Add(1)
	return &countingConn{Conn: c, m: l.m}, nil
}

type countingConn struct {
	net.Conn
	m      *metrics.Listener
	closed atomic.Bool
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.m.Read.Add(float64(n))
	}
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.m.Write.Add(float64(n))
	}
	return n, err
}

// NetConn returns the connection counted.
func (c *countingConn) NetConn() net.Conn { return c.Conn }

func (c *countingConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.m.Open.Add(-1)
	}
	return c.Conn.Close()
}

// sourceLimitListener bounds the connections open at once from one client
// IP address: a connection beyond the bound is closed as soon as it is
// accepted, so one source cannot take every slot of the listener.
type sourceLimitListener struct {
	net.Listener
	max      int
	refused  func()
	mu       sync.Mutex
	bySource map[netip.Addr]int
}

func newSourceLimitListener(ln net.Listener, max int, refused func()) net.Listener {
	if max <= 0 {
		return ln
	}
	return &sourceLimitListener{Listener: ln, max: max, refused: refused, bySource: map[netip.Addr]int{}}
}

func (l *sourceLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
		if err != nil {
			return c, nil
		}
		src := ap.Addr().Unmap()
		l.mu.Lock()
		if l.bySource[src] >= l.max {
			l.mu.Unlock()
			c.Close()
			if l.refused != nil {
				l.refused()
			}
			continue
		}
		l.bySource[src]++
		l.mu.Unlock()
		return &sourceConn{Conn: c, l: l, src: src}, nil
	}
}

type sourceConn struct {
	net.Conn
	l    *sourceLimitListener
	src  netip.Addr
	once sync.Once
}

// NetConn returns the connection counted.
func (c *sourceConn) NetConn() net.Conn { return c.Conn }

func (c *sourceConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.bySource[c.src]--; c.l.bySource[c.src] <= 0 {
			delete(c.l.bySource, c.src)
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
