package scenarios

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/meshbench/meshbench/internal/names"
)

// BuildSep joins the reference proxy and the name of one of its builds in
// a proxy value: "reference@base" runs the meshproxy binary the run names
// "base" (meshbench run --proxy-binary base=PATH).
const BuildSep = "@"

// ReferenceBuild reports whether the proxy value impl is the reference
// proxy, and returns the name of its build ("" for the run's default
// meshproxy). A build name follows names.Safe.
func ReferenceBuild(impl string) (build string, ok bool) {
	if impl == ProxyReference {
		return "", true
	}
	name, found := strings.CutPrefix(impl, ProxyReference+BuildSep)
	if !found || !names.Safe(name) {
		return "", false
	}
	return name, true
}

// BuildValue is the proxy value of the reference proxy's build name.
func BuildValue(build string) string { return ProxyReference + BuildSep + build }

// Builds returns the builds of the reference proxy the scenario names
// (reference@NAME in the proxy dimension or a matrix rule), in the order
// they first appear; a run must be given a binary for each.
func (s *Scenario) Builds() []string {
	var out []string
	add := func(v string) {
		if b, ok := ReferenceBuild(v); ok && b != "" && !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	for _, d := range s.dims {
		if d.name == DimProxy {
			for _, v := range d.values {
				add(v)
			}
		}
	}
	for _, rules := range [][]map[string]string{s.Matrix.Include, s.Matrix.Exclude} {
		for _, r := range rules {
			add(r[DimProxy])
		}
	}
	return out
}

// WithBuilds returns a copy of a scenario that names no builds, in which
// every cell of the reference proxy runs once per build instead: the
// proxy value "reference" (or, without a proxy dimension, the implicit
// one) becomes reference@<build> for each build, in that order, and so do
// the matrix rules that name it. Without a proxy dimension one is added
// after the file's dimensions (before a sweep's rate), so that the builds
// of one combination run next to each other in every repeat.
func (s *Scenario) WithBuilds(builds []string) (*Scenario, error) {
	if len(builds) == 0 {
		return nil, fmt.Errorf("scenario %s: no builds", s.Name)
	}
	for _, b := range builds {
		if !names.Safe(b) {
			return nil, fmt.Errorf("build %q: use lower-case letters, digits, '-' and '_', starting with a letter or digit", b)
		}
	}
	if named := s.Builds(); len(named) > 0 {
		return nil, fmt.Errorf("scenario %s names its builds already (%s)", s.Name, strings.Join(named, ", "))
	}
	values := make([]string, len(builds))
	for i, b := range builds {
		values[i] = BuildValue(b)
	}
	out := *s
	out.dims = nil
	hasProxy, firstIsReference := false, true
	for _, d := range s.dims {
		if d.name == DimProxy {
			hasProxy, firstIsReference = true, d.values[0] == ProxyReference
			d.values = splice(d.values, values)
		} else {
			d.values = slices.Clone(d.values)
		}
		out.dims = append(out.dims, d)
	}
	if !hasProxy {
		d := dimension{name: DimProxy, values: values}
		if n := len(out.dims); n > 0 && out.dims[n-1].name == DimRate {
			out.dims = slices.Insert(out.dims, n-1, d)
		} else {
			out.dims = append(out.dims, d)
		}
	}
	m := s.Matrix
	m.Proxy = splice(m.Proxy, values)
	if !hasProxy {
		m.Proxy = values
	}
	// An include rule without a proxy takes the dimension's first value:
	// the reference proxy when it was first (or implicit), so every build.
	m.Include = splitRules(s.Matrix.Include, values, firstIsReference)
	m.Exclude = splitRules(s.Matrix.Exclude, values, false)
	out.Matrix = m
	return &out, nil
}

// splice replaces "reference" in vs by the build values.
func splice(vs, builds []string) []string {
	var out []string
	for _, v := range vs {
		if v == ProxyReference {
			out = append(out, builds...)
		} else {
			out = append(out, v)
		}
	}
	return out
}

// splitRules copies every rule that names the reference proxy (or, when
// implicit is true, names no proxy) once per build.
func splitRules(rules []map[string]string, builds []string, implicit bool) []map[string]string {
	var out []map[string]string
	for _, r := range rules {
		p, named := r[DimProxy]
		if p != ProxyReference && (named || !implicit) {
			out = append(out, maps.Clone(r))
			continue
		}
		for _, b := range builds {
			c := maps.Clone(r)
			c[DimProxy] = b
			out = append(out, c)
		}
	}
	return out
}
