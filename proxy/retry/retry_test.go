package retry

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func TestParseConditions(t *testing.T) {
	c, bad := ParseConditions([]string{"connect-failure", "503", "unavailable"})
	if bad != "" || !c.ConnectFailure || !c.Status503 || !c.Unavailable || c.Reset {
		t.Fatalf("got %+v, bad %q", c, bad)
	}
	if _, bad := ParseConditions([]string{"reset", "5xx"}); bad != "5xx" {
		t.Errorf("unknown condition reported as %q", bad)
	}
}

func TestBackoffIsFullJitterUnderACeiling(t *testing.T) {
	p := Policy{BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}
	rnd := rand.New(rand.NewPCG(1, 2)).Int64N
	for n, ceiling := range map[int]time.Duration{1: 10 * time.Millisecond, 2: 30 * time.Millisecond, 3: 50 * time.Millisecond, 40: 50 * time.Millisecond} {
		lo, hi := ceiling, time.Duration(0)
		for range 2000 {
			d := p.Backoff(n, rnd)
			if d < 0 || d > ceiling {
				t.Fatalf("retry %d: backoff %v outside [0, %v]", n, d, ceiling)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// Full jitter spans the whole interval.
		if lo > ceiling/10 || hi < ceiling*9/10 {
			t.Errorf("retry %d: backoffs spanned [%v, %v], want most of [0, %v]", n, lo, hi, ceiling)
		}
	}
}

// TestBudgetCapsRetriesUnderAFailureStorm runs 200 concurrent requests that
// all fail and all want to retry: only 20% of them (or the floor) may be
// retrying at once.
func TestBudgetCapsRetriesUnderAFailureStorm(t *testing.T) {
	b := NewBudget(0.2, 3)
	for range 200 {
		b.Begin()
	}
	granted := 0
	for range 200 {
		if b.TryRetry() {
			granted++
		}
	}
	if granted != 40 || b.Exhausted() != 160 {
		t.Fatalf("granted %d retries, refused %d; want 40 and 160", granted, b.Exhausted())
	}
	// Finished retries free their share.
	for range 10 {
		b.Done()
	}
	if !b.TryRetry() {
		t.Error("no retry after 10 finished")
	}
	// At low load the floor applies.
	low := NewBudget(0.2, 3)
	low.Begin()
	n := 0
	for low.TryRetry() {
		n++
	}
	if n != 3 {
		t.Errorf("one active request: %d retries allowed, want the floor 3", n)
	}
}

func TestBudgetConcurrent(t *testing.T) {
	b := NewBudget(0.5, 1)
	for range 100 {
		b.Begin()
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak, cur := int64(0), int64(0)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				if b.TryRetry() {
					mu.Lock()
					cur++
					peak = max(peak, cur)
					mu.Unlock()
					mu.Lock()
					cur--
					mu.Unlock()
					b.Done()
				}
			}
		}()
	}
	wg.Wait()
	if peak > 50 || b.InFlight() != 0 {
		t.Errorf("peak %d retries in flight (limit 50), %d left", peak, b.InFlight())
	}
}

func TestBodyReplaysWithinTheLimit(t *testing.T) {
	src := bytes.NewReader([]byte("hello, world"))
	b := NewBody(src, 64)
	r1, _ := b.Attempt()
	head := make([]byte, 5)
	if _, err := io.ReadFull(r1, head); err != nil {
		t.Fatal(err)
	}
	// A second attempt starts after the first read part of the body.
	r2, ok := b.Attempt()
	if !ok {
		t.Fatal("body within the limit not replayable")
	}
	if _, err := r1.Read(head); !errors.Is(err, ErrSuperseded) {
		t.Errorf("old attempt read: %v, want ErrSuperseded", err)
	}
	all, err := io.ReadAll(r2)
	if err != nil || string(all) != "hello, world" {
		t.Fatalf("replay read %q, %v", all, err)
	}
	r3, _ := b.Attempt()
	if all, _ := io.ReadAll(r3); string(all) != "hello, world" {
		t.Errorf("third attempt read %q", all)
	}
}

func TestBodyPastTheLimitIsNotReplayed(t *testing.T) {
	b := NewBody(bytes.NewReader(bytes.Repeat([]byte("x"), 100)), 10)
	r1, _ := b.Attempt()
	if all, err := io.ReadAll(r1); err != nil || len(all) != 100 {
		t.Fatalf("first attempt read %d bytes, %v", len(all), err)
	}
	if _, ok := b.Attempt(); ok || b.Replayable() {
		t.Error("a body streamed past the limit was offered for replay")
	}
}

// TestBodyKeepsWhatASupersededReaderRead: an old attempt blocked in the
// source's Read gets data after the new attempt started; the new attempt
// must still see every byte in order.
func TestBodyKeepsWhatASupersededReaderRead(t *testing.T) {
	pr, pw := io.Pipe()
	src := &enteringReader{r: pr, entered: make(chan struct{}, 1)}
	b := NewBody(src, 1024)
	r1, _ := b.Attempt()
	got1 := make(chan error, 1)
	go func() {
		_, err := r1.Read(make([]byte, 16))
		got1 <- err
	}()
	<-src.entered // r1 is blocked in the source
	r2, _ := b.Attempt()
	done := make(chan []byte, 1)
	go func() {
		all, _ := io.ReadAll(r2)
		done <- all
	}()
	pw.Write([]byte("abc"))
	if err := <-got1; !errors.Is(err, ErrSuperseded) {
		t.Errorf("old reader: %v", err)
	}
	pw.Write([]byte("def"))
	pw.Close()
	if all := <-done; string(all) != "abcdef" {
		t.Errorf("new attempt read %q, want abcdef", all)
	}
}

// enteringReader tells on entered each time a Read begins.
type enteringReader struct {
	r       io.Reader
	entered chan struct{}
}

func (e *enteringReader) Read(p []byte) (int, error) {
	select {
	case e.entered <- struct{}{}:
	default:
	}
	return e.r.Read(p)
}
