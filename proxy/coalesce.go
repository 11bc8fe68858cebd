package proxy

import (
	"net"
	"runtime"
	"sync"
	"time"
)

// coalescer gathers the writes of one HTTP/2 connection and writes them
// together. net/http's HTTP/2 server flushes every response it completes
// and its Transport every request's HEADERS, each with a write(2) of its
// own: with many streams in flight that is a system call per frame, about
// a third of the proxy's CPU over h2c. Write only appends to a buffer; a
// goroutine per connection lets whoever else is ready to write run once
// (runtime.Gosched) and then writes everything gathered in one call.
//
// Write blocks while more than coalesceLimit bytes wait (besides those
// being written), so a peer that does not read still holds the writers
// back, as the socket would. An
// error of the underlying write is returned by every later Write. Close
// writes what is pending first (for at most coalesceDrain: a peer that
// reads nothing must not hold the connection open), then closes.
type coalescer struct {
	net.Conn
	mu      sync.Mutex
	cond    *sync.Cond
	buf     []byte // waiting to be written
	out     []byte // being written by the flusher
	err     error  // the underlying write's error, sticky
	closing bool
	done    chan struct{} // closed when the flusher has returned
	started bool
}

const (
	coalesceLimit = 256 << 10
	coalesceDrain = time.Second
)

func newCoalescer(c net.Conn) *coalescer {
	co := &coalescer{Conn: c, done: make(chan struct{})}
	co.cond = sync.NewCond(&co.mu)
	return co
}

// NetConn returns the connection written to.
func (co *coalescer) NetConn() net.Conn { return co.Conn }

// Write queues p and returns at once, unless too much is waiting.
func (co *coalescer) Write(p []byte) (int, error) {
	co.mu.Lock()
	defer co.mu.Unlock()
	if !co.started {
		co.started = true
		go co.flush()
	}
	for co.err == nil && !co.closing && len(co.buf) > 0 && len(co.buf)+len(p) > coalesceLimit {
		co.cond.Wait()
	}
	switch {
	case co.err != nil:
		return 0, co.err
	case co.closing:
		return 0, net.ErrClosed
	}
	co.buf = append(co.buf, p...)
	co.cond.Broadcast()
	return len(p), nil
}

// flush writes what Write gathered until the connection closes or a write
// fails.
func (co *coalescer) flush() {
	defer close(co.done)
	co.mu.Lock()
	defer co.mu.Unlock()
	for {
		for len(co.buf) == 0 && !co.closing && co.err == nil {
			co.cond.Wait()
		}
		if co.err != nil || len(co.buf) == 0 {
			return // failed, or closing with nothing left
		}
		if !co.closing {
			// Let the goroutines that are about to write (other streams'
			// handlers, the server's frame writer) add their bytes.
			co.mu.Unlock()
			runtime.Gosched()
			co.mu.Lock()
		}
		co.buf, co.out = co.out[:0], co.buf
		co.cond.Broadcast() // room for the writers
		co.mu.Unlock()
		_, err := co.Conn.Write(co.out)
		co.mu.Lock()
		if err != nil {
			co.err = err
			co.cond.Broadcast()
			return
		}
		if cap(co.out) > coalesceLimit*2 {
			co.out = nil // do not keep a burst's buffer
		}
	}
}

// drain waits, for at most d, until what was written has left.
func (co *coalescer) drain(d time.Duration) {
	co.mu.Lock()
	if !co.started {
		co.mu.Unlock()
		return
	}
	co.closing = true
	co.cond.Broadcast()
	co.mu.Unlock()
	select {
	case <-co.done:
	case <-time.After(d):
	}
}

// Close writes what is pending (for at most coalesceDrain), then closes
// the connection.
func (co *coalescer) Close() error {
	co.drain(coalesceDrain)
	return co.Conn.Close()
}

// CloseWrite writes what is pending, then shuts the write side of the
// connection underneath.
func (co *coalescer) CloseWrite() error {
	co.drain(coalesceDrain)
	if cw := closeWriter(co.Conn); cw != nil {
		return cw.CloseWrite()
	}
	return nil
}
