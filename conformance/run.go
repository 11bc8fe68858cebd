package conformance

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// CheckTimeout bounds one check; a check still running then fails.
const CheckTimeout = 90 * time.Second

// Options configure a conformance run.
type Options struct {
	// Checks run, in order, against each target.
	Checks []Check
	// Targets are the proxies, in order.
	Targets []*Target
	// Dir is where the checks' files go (one directory per check).
	Dir string
	// Tools are the outside programs checks may run.
	Tools Tools
	// Log receives the checks' records; nil discards them.
	Log *slog.Logger
	// Progress, when set, is told before and after each check.
	Progress func(Progress)
	// Sabotage breaks every setup on purpose (tests of the checks).
	Sabotage *Sabotage
}

// Progress is where a run is.
type Progress struct {
	Target string
	Check  string
	Done   int // checks finished, over every target
	Total  int
	// Result is set once the check has ended.
	Result *Result
}

// Run runs every check against every target. It returns the report so
// far, with an error, when ctx is cancelled.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := Validate(o.Checks); err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rep := &Report{Started: time.Now().UTC(), Checks: infos(o.Checks)}
	total, done := len(o.Checks)*len(o.Targets), 0
	for _, t := range o.Targets {
		pr := ProxyReport{Name: t.Name, Version: t.Version, Binary: t.Binary, ConfigOnly: t.ConfigOnly}
		for _, c := range o.Checks {
			if err := ctx.Err(); err != nil {
				rep.Proxies = append(rep.Proxies, pr)
				rep.finish()
				return rep, err
			}
			if o.Progress != nil {
				o.Progress(Progress{Target: t.Name, Check: c.ID, Done: done, Total: total})
			}
			r := RunOne(ctx, t, c, o, log)
			if err := ctx.Err(); err != nil {
				// Interrupted: the check did not end by itself, so it
				// has no result.
				rep.Proxies = append(rep.Proxies, pr)
				rep.finish()
				return rep, err
			}
			done++
			pr.Results = append(pr.Results, r)
			if o.Progress != nil {
				o.Progress(Progress{Target: t.Name, Check: c.ID, Done: done, Total: total, Result: &r})
			}
		}
		rep.Proxies = append(rep.Proxies, pr)
	}
	rep.finish()
	return rep, ctx.Err()
}

// RunOne runs one check against one target.
func RunOne(ctx context.Context, t *Target, c Check, o Options, log *slog.Logger) (res Result) {
	start := time.Now()
	res.ID = c.ID
	defer func() { res.DurationMs = float64(time.Since(start).Microseconds()) / 1e3 }()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Join(o.Dir, t.Name, filepath.FromSlash(c.ID))
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "meshbench-conform-")
		if err != nil {
			res.Status, res.Reason = StatusFail, fmt.Sprintf("setup: %v", err)
			return res
		}
		defer os.RemoveAll(d)
		dir = d
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		res.Status, res.Reason = StatusFail, fmt.Sprintf("setup: %v", err)
		return res
	}
	cctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	e := &Env{ctx: cctx, target: t, dir: dir, log: log.With("proxy", t.Name, "check", c.ID), sabotage: o.Sabotage, tools: o.Tools}
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("the check panicked: %v", p)
			}
		}()
		if err := e.Require(c.Needs...); err != nil {
			return err
		}
		return c.Run(e)
	}()
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	res.Status, res.Reason = Classify(err)
	if res.Status == StatusFail && cctx.Err() != nil && ctx.Err() == nil {
		res.Reason = fmt.Sprintf("timed out after %v: %s", CheckTimeout, res.Reason)
	}
	res.Figures = e.figures
	e.log.Info("check ended", "status", res.Status, "reason", res.Reason)
	return res
}
