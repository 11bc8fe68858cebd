package retry

import (
	"errors"
	"io"
	"sync"
)

// ErrSuperseded is what a reader of an abandoned attempt gets once a newer
// attempt has started.
var ErrSuperseded = errors.New("request body: a newer attempt took over")

// Body makes a request body replayable. Each attempt reads through its own
// reader from Attempt; the bytes the source yields are kept, up to a limit,
// so a later attempt replays them before continuing from the source. Once
// the source has yielded more than the limit the body is streaming: it is
// no longer kept and no new attempt can start. The source is read by one
// reader at a time and is never closed by Body.
type Body struct {
	src   io.Reader
	limit int

	readMu sync.Mutex // held across src.Read

	mu       sync.Mutex // guards the fields below
	buf      []byte
	overflow bool
	err      error // the source's terminal error (io.EOF at the end)
	gen      int
}

// NewBody wraps src, keeping up to limit bytes for replay.
func NewBody(src io.Reader, limit int) *Body {
	return &Body{src: src, limit: limit}
}

// Attempt returns the body reader of a new attempt, and false when the body
// can no longer be replayed. Readers of earlier attempts fail with
// ErrSuperseded from then on.
func (b *Body) Attempt() (io.ReadCloser, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.overflow {
		return nil, false
	}
	b.gen++
	return &attemptReader{b: b, gen: b.gen}, true
}

// Replayable reports whether another attempt could start.
func (b *Body) Replayable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.overflow
}

type attemptReader struct {
	b   *Body
	gen int
	pos int // bytes of the body this reader has returned
}

func (r *attemptReader) Read(p []byte) (int, error) {
	b := r.b
	for {
		b.mu.Lock()
		if r.gen != b.gen {
			b.mu.Unlock()
			return 0, ErrSuperseded
		}
		if !b.overflow && r.pos < len(b.buf) {
			n := copy(p, b.buf[r.pos:])
			r.pos += n
			b.mu.Unlock()
			return n, nil
		}
		if b.err != nil {
			err := b.err
			b.mu.Unlock()
			return 0, err
		}
		b.mu.Unlock()

		b.readMu.Lock()
		b.mu.Lock()
		// While this reader waited, a superseded one may have read and
		// kept more of the source: serve that from the buffer first.
		pending := r.gen != b.gen || (!b.overflow && r.pos < len(b.buf)) || b.err != nil
		b.mu.Unlock()
		if pending {
			b.readMu.Unlock()
			continue
		}
		n, err := b.src.Read(p)
		b.mu.Lock()
		if n > 0 && !b.overflow {
			if len(b.buf)+n > b.limit {
				b.overflow = true
				b.buf = nil
			} else {
				b.buf = append(b.buf, p[:n]...)
			}
		}
		if err != nil {
			b.err = err
		}
		superseded := r.gen != b.gen
		b.mu.Unlock()
		b.readMu.Unlock()
		if superseded {
			// The bytes are kept for the newer attempt (unless the
			// limit was passed, in which case it cannot replay).
			return 0, ErrSuperseded
		}
		r.pos += n
		if n > 0 {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// Close does nothing: the source belongs to the caller, and a transport
// closing an attempt's body must not end the request's.
func (r *attemptReader) Close() error { return nil }
