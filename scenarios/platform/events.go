package platform

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/meshbench/meshbench/reports/result"
	"github.com/meshbench/meshbench/scenarios"
)

// ApplyEvents applies each event with apply at measured + its offset, in
// time order, until ctx ends; a failed event does not stop the later ones.
// The returned function waits for the applier to finish and returns the
// events applied and every failure.
func ApplyEvents(ctx context.Context, events []scenarios.Event, measured time.Time, apply func(context.Context, scenarios.Event) error) func() ([]result.Event, error) {
	evs := slices.Clone(events)
	slices.SortStableFunc(evs, func(a, b scenarios.Event) int { return cmp.Compare(a.At, b.At) })
	var (
		records []result.Event
		errs    []error
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, ev := range evs {
			t := time.NewTimer(time.Until(measured.Add(ev.At)))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			if err := apply(ctx, ev); err != nil {
				errs = append(errs, err)
				continue
			}
			records = append(records, ev.Record(time.Since(measured)))
		}
	}()
	return func() ([]result.Event, error) {
		<-done
		return records, errors.Join(errs...)
	}
}
