package pace_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meshbench/meshbench/internal/pace"
)

func TestUntilNeverReturnsEarly(t *testing.T) {
	timer := time.NewTimer(time.Hour)
	for _, spin := range []time.Duration{0, time.Millisecond} {
		for range 20 {
			target := time.Now().Add(3 * time.Millisecond)
			if err := pace.Until(context.Background(), target, spin, timer); err != nil {
				t.Fatal(err)
			}
			if now := time.Now(); now.Before(target) {
				t.Fatalf("spin %v: returned %v early", spin, target.Sub(now))
			}
		}
	}
}

func TestUntilStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := pace.Until(ctx, time.Now().Add(time.Hour), time.Millisecond, nil)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Errorf("err %v after %v", err, time.Since(start))
	}
	// Inside the spin window the context is still checked.
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := pace.Until(ctx2, time.Now().Add(500*time.Microsecond), time.Millisecond, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context while spinning: %v", err)
	}
}
