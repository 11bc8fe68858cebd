package scenarios

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// builtins holds the scenarios that ship with meshbench.
//
//go:embed *.yaml
var builtins embed.FS

// BuiltinNames returns the names of the built-in scenarios, sorted.
func BuiltinNames() []string {
	entries, err := fs.ReadDir(builtins, ".")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok && !e.IsDir() {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Builtin returns the built-in scenario name ("default", "quick", ...). Its
// File, and its errors, read scenarios/<name>.yaml.
func Builtin(name string) (*Scenario, error) {
	if !slices.Contains(BuiltinNames(), name) {
		return nil, fmt.Errorf("no built-in scenario %q (built-ins: %s)", name, strings.Join(BuiltinNames(), ", "))
	}
	data, err := builtins.ReadFile(name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("reading built-in scenario %s: %w", name, err)
	}
	return Parse(path.Join("scenarios", name+".yaml"), data)
}

// Open returns the scenario arg names: the file at that path if there is
// one, else the built-in of that name, written with or without ".yaml" and
// a "scenarios/" prefix.
func Open(arg string) (*Scenario, error) {
	if fi, err := os.Stat(arg); err == nil && !fi.IsDir() {
		return Load(arg)
	}
	name := strings.TrimPrefix(strings.TrimPrefix(arg, "./"), "scenarios/")
	name = strings.TrimSuffix(name, ".yaml")
	if !slices.Contains(BuiltinNames(), name) {
		return nil, fmt.Errorf("scenario %q: no such file, and no built-in scenario of that name (built-ins: %s)",
			arg, strings.Join(BuiltinNames(), ", "))
	}
	return Builtin(name)
}
