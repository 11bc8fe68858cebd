package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/meshbench/meshbench/internal/names"
	"github.com/meshbench/meshbench/scenarios"
)

// buildFlag collects --proxy-binary NAME=PATH: builds of the reference
// proxy, in the order given, as proxy values reference@NAME.
type buildFlag struct {
	order []string
	paths map[string]string
}

func (f *buildFlag) String() string { return "" }

func (f *buildFlag) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || path == "" || !names.Safe(name) {
		return fmt.Errorf("%q: want NAME=PATH, NAME of lower-case letters, digits, '-' and '_'", v)
	}
	if _, dup := f.paths[name]; dup {
		return fmt.Errorf("%q: build %s given twice", v, name)
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%q: %w", v, err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%q: %s is not an executable file", v, path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("%q: %w", v, err)
	}
	if f.paths == nil {
		f.paths = map[string]string{}
	}
	f.order = append(f.order, name)
	f.paths[name] = abs
	return nil
}

// applyBuilds matches the builds of the command line with the scenario's:
// a scenario that names builds (reference@NAME) needs a binary for each
// and no other; one that names none has every reference cell split into
// one per build (Scenario.WithBuilds). It returns the scenario to run and
// the builds' binaries by proxy value (reference@NAME), for run.json.
func applyBuilds(sc *scenarios.Scenario, f *buildFlag) (*scenarios.Scenario, map[string]string, error) {
	binaries := map[string]string{}
	named := sc.Builds()
	switch {
	case len(named) == 0 && len(f.order) == 0:
		return sc, binaries, nil
	case len(named) == 0:
		split, err := sc.WithBuilds(f.order)
		if err != nil {
			return nil, nil, err
		}
		sc = split
	default:
		var missing, unused []string
		for _, n := range named {
			if _, ok := f.paths[n]; !ok {
				missing = append(missing, n)
			}
		}
		for _, n := range f.order {
			if !slices.Contains(named, n) {
				unused = append(unused, n)
			}
		}
		if len(missing) > 0 {
			var want []string
			for _, n := range missing {
				want = append(want, "--proxy-binary "+n+"=PATH")
			}
			return nil, nil, fmt.Errorf("scenario %s runs builds of the reference proxy: give %s", sc.Name, strings.Join(want, " "))
		}
		if len(unused) > 0 {
			return nil, nil, fmt.Errorf("--proxy-binary %s: scenario %s names no such build (it names %s)", strings.Join(unused, ", "), sc.Name, strings.Join(named, ", "))
		}
	}
	for _, n := range f.order {
		binaries[scenarios.BuildValue(n)] = f.paths[n]
	}
	return sc, binaries, nil
}
