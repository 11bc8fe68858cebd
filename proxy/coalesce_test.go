package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowConn is a connection whose writes take a while and are counted, and
// that can be made to fail.
type slowConn struct {
	net.Conn
	delay  time.Duration
	writes atomic.Int64
	fail   atomic.Bool
}

func (c *slowConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	if c.fail.Load() {
		return 0, errors.New("broken pipe")
	}
	time.Sleep(c.delay)
	return c.Conn.Write(p)
}

// TestCoalescerKeepsOrderAndGathers: writes from several goroutines all
// arrive, each goroutine's in its order, in far fewer writes underneath
// than Writes (they pile up while one is written).
func TestCoalescerKeepsOrderAndGathers(t *testing.T) {
	a, b := net.Pipe()
	under := &slowConn{Conn: a, delay: time.Millisecond}
	co := newCoalescer(under)
	const writers, each = 8, 200
	got := make(chan []byte, 1)
	go func() {
		all, _ := io.ReadAll(b)
		got <- all
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				var rec [8]byte
				binary.BigEndian.PutUint32(rec[:4], uint32(w))
				binary.BigEndian.PutUint32(rec[4:], uint32(i))
				if _, err := co.Write(rec[:]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := co.Close(); err != nil {
		t.Fatal(err)
	}
	all := <-got
	if len(all) != writers*each*8 {
		t.Fatalf("%d bytes arrived, want %d", len(all), writers*each*8)
	}
	next := make([]uint32, writers)
	for off := 0; off < len(all); off += 8 {
		w, i := binary.BigEndian.Uint32(all[off:]), binary.BigEndian.Uint32(all[off+4:])
		if w >= writers || i != next[w] {
			t.Fatalf("record %d: writer %d's record %d, want its %d", off/8, w, i, next[w])
		}
		next[w]++
	}
	if n := under.writes.Load(); n > writers*each/10 {
		t.Errorf("%d writes underneath for %d Writes: nothing was gathered", n, writers*each)
	}
}

// TestCoalescerCloseWritesWhatIsPending: bytes accepted by Write reach the
// peer although Close follows at once.
func TestCoalescerCloseWritesWhatIsPending(t *testing.T) {
	a, b := net.Pipe()
	co := newCoalescer(a)
	got := make(chan []byte, 1)
	go func() {
		all, _ := io.ReadAll(b)
		got <- all
	}()
	want := bytes.Repeat([]byte("goaway"), 1000)
	if _, err := co.Write(want); err != nil {
		t.Fatal(err)
	}
	co.Close()
	if all := <-got; !bytes.Equal(all, want) {
		t.Fatalf("%d bytes arrived, want %d", len(all), len(want))
	}
}

// TestCoalescerPeerThatDoesNotRead: writers are held back once the buffer
// is full, Close gives up on the pending bytes after coalesceDrain, and
// later Writes fail.
func TestCoalescerPeerThatDoesNotRead(t *testing.T) {
	a, b := net.Pipe() // nobody reads b
	defer b.Close()
	co := newCoalescer(a)
	chunk := make([]byte, 64<<10)
	blocked := make(chan struct{})
	go func() {
		defer close(blocked)
		// At most twice the limit is held: a buffer being written and
		// one filling.
		for range 3 * coalesceLimit / len(chunk) {
			if _, err := co.Write(chunk); err != nil {
				return
			}
		}
	}()
	select {
	case <-blocked:
		t.Fatal("three times the limit was accepted from a peer that reads nothing")
	case <-time.After(100 * time.Millisecond):
	}
	start := time.Now()
	co.Close()
	if d := time.Since(start); d > coalesceDrain+2*time.Second {
		t.Fatalf("Close took %v with a peer that reads nothing, want about %v", d, coalesceDrain)
	}
	<-blocked
	if _, err := co.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

// TestCoalescerWriteErrorIsSticky: once a write underneath failed, every
// Write fails.
func TestCoalescerWriteErrorIsSticky(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	go io.Copy(io.Discard, b)
	under := &slowConn{Conn: a}
	under.fail.Store(true)
	co := newCoalescer(under)
	defer co.Close()
	co.Write([]byte("first"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := co.Write([]byte("next"))
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Writes kept succeeding after the connection's write failed")
		}
		time.Sleep(time.Millisecond)
	}
}
