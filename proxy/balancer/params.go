package balancer

import (
	"fmt"
	"slices"
	"strings"
)

// A Problem is what is wrong with a Config: the parameter (its YAML name;
// empty for the block as a whole) and why.
type Problem struct {
	Param, Msg string
}

func (p Problem) String() string {
	if p.Param == "" {
		return p.Msg
	}
	return p.Param + ": " + p.Msg
}

// Validate returns what is wrong with c for a cluster of the given number
// of endpoints: an unknown policy, a parameter of another policy, a value
// out of its range. These are the only rules for the parameters: the
// proxy's configuration and the scenarios validate through them, and New
// refuses what they refuse. An empty Policy is DefaultPolicy.
func (c Config) Validate(endpoints int) []Problem {
	policy := c.Policy
	if policy == "" {
		policy = DefaultPolicy
	}
	var ps []Problem
	add := func(param, format string, args ...any) {
		ps = append(ps, Problem{Param: param, Msg: fmt.Sprintf(format, args...)})
	}
	if !slices.Contains(Policies(), policy) {
		add("policy", "%q: unknown policy (known: %s)", policy, strings.Join(Policies(), ", "))
	}
	// least_request
	if (c.ChoiceCount != 0 || c.FullScan) && policy != PolicyLeastRequest {
		add("", "choice_count and full_scan apply to least_request only")
	}
	if c.ChoiceCount != 0 && c.ChoiceCount < 2 {
		add("choice_count", "%d: must be at least 2", c.ChoiceCount)
	}
	// peak_ewma
	if (c.Decay != 0 || c.DefaultRTT != 0) && policy != PolicyPeakEWMA {
		add("", "decay and default_rtt apply to peak_ewma only")
	}
	if c.Decay < 0 || c.DefaultRTT < 0 {
		add("", "decay and default_rtt must be positive")
	}
	// ring_hash
	if c.MinRingSize != 0 && policy != PolicyRingHash || c.MinRingSize < 0 {
		add("min_ring_size", "a positive size, for ring_hash only")
	}
	// maglev
	if c.TableSize != 0 {
		if policy != PolicyMaglev {
			add("table_size", "applies to maglev only")
		} else if err := CheckTableSize(c.TableSize, max(1, endpoints)); err != nil {
			add("table_size", "%v", err)
		}
	}
	return ps
}
