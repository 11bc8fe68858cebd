package pace

import (
	"context"
	"runtime"
	"time"
)

// Until waits until t or until ctx is done, whichever comes first, and
// returns ctx's error in the second case. It sleeps on timer (reset as
// needed; pass nil to use a fresh one) until spin before t, then spins. A
// spin of 0 only sleeps.
func Until(ctx context.Context, t time.Time, spin time.Duration, timer *time.Timer) error {
	if d := time.Until(t) - spin; d > 0 {
		if timer == nil {
			timer = time.NewTimer(d)
			defer timer.Stop()
		} else {
			timer.Reset(d)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for time.Now().Before(t) {
		if err := ctx.Err(); err != nil {
			return err
		}
		runtime.Gosched()
	}
	return ctx.Err()
}
