package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/meshbench/meshbench/proxy/metrics"
)

// tlsListener terminates TLS itself, so that what net/http reads from a TLS
// connection passes through the same framing guard as a cleartext one:
// net/http sees every connection as cleartext (HTTP/2 arrives as h2 with
// prior knowledge after ALPN chose it), and the handshake's state reaches
// the handler through the connection's context (see tlsState).
//
// Handshakes run one goroutine per connection, bounded by timeout, so one
// slow client never holds up Accept; a connection is handed to the server
// once its handshake is complete, and counted as a failure otherwise.
type tlsListener struct {
	net.Listener
	cfg     *tls.Config
	timeout time.Duration
	hs      metrics.Handshakes

	ready chan net.Conn
	errc  chan error
	// ctx ends at Close: it stops the handshakes under way.
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

func newTLSListener(ln net.Listener, cfg *tls.Config, timeout time.Duration, hs metrics.Handshakes) *tlsListener {
	l := &tlsListener{Listener: ln, cfg: cfg, timeout: timeout, hs: hs,
		ready: make(chan net.Conn), errc: make(chan error, 1)}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	go l.acceptLoop()
	return l
}

// acceptLoop accepts connections and starts their handshakes. An accept
// error other than the listener's close (a descriptor limit, say) is
// retried after a pause that doubles up to a second, as net/http does.
func (l *tlsListener) acceptLoop() {
	var pause time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.ctx.Err() != nil {
				select {
				case l.errc <- err:
				case <-l.ctx.Done():
				}
				return
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(pause):
			case <-l.ctx.Done():
			}
			continue
		}
		pause = 0
		go l.handshake(c)
	}
}

func (l *tlsListener) handshake(c net.Conn) {
	tc := tls.Server(c, l.cfg)
	ctx, cancel := context.WithTimeout(l.ctx, l.timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		l.hs.Failure.Inc()
		c.Close()
		return
	}
	select {
	case l.ready <- tc:
	case <-l.ctx.Done():
		tc.Close()
	}
}

// Accept returns the next connection whose handshake is complete.
func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close stops accepting and ends the handshakes under way.
func (l *tlsListener) Close() error {
	var err error
	l.once.Do(func() {
		l.cancel()
		err = l.Listener.Close()
	})
	return err
}

// tlsState returns the TLS state of the connection under c (through the
// wrappers that expose NetConn), or nil for a cleartext connection.
func tlsState(c net.Conn) *tls.ConnectionState {
	for c != nil {
		switch v := c.(type) {
		case *tls.Conn:
			st := v.ConnectionState()
			return &st
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// tlsStateKey carries a connection's TLS state in its context.
type tlsStateKey struct{}

// withTLSState is the server's ConnContext on TLS listeners.
func withTLSState(ctx context.Context, c net.Conn) context.Context {
	if st := tlsState(c); st != nil {
		return context.WithValue(ctx, tlsStateKey{}, st)
	}
	return ctx
}

// tlsStateFrom returns the TLS state withTLSState stored, or nil.
func tlsStateFrom(ctx context.Context) *tls.ConnectionState {
	st, _ := ctx.Value(tlsStateKey{}).(*tls.ConnectionState)
	return st
}
