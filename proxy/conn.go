package proxy

import (
	"net"
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
