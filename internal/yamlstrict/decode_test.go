package yamlstrict_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/internal/yamlstrict"
)

type inner struct {
	Port    int               `yaml:"port"`
	On      bool              `yaml:"on"`
	Ratio   float64           `yaml:"ratio"`
	Wait    time.Duration     `yaml:"wait"`
	Labels  map[string]string `yaml:"labels"`
	Skipped string            `yaml:"-"`
}

type doc struct {
	Name  string   `yaml:"name"`
	Items []inner  `yaml:"items"`
	Ptr   *inner   `yaml:"ptr"`
	Tags  []string `yaml:"tags"`
	Count uint8    `yaml:"count"`
}

func TestDecodeValues(t *testing.T) {
	var d doc
	pos, err := yamlstrict.Decode("d.yaml", []byte(`name: x
items:
- {port: 80, on: true, ratio: 0.5, wait: 1m30s, labels: {a: b}}
ptr: {port: 1}
tags: [a, b]
count: 255
`), &d)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "x" || d.Items[0].Port != 80 || !d.Items[0].On || d.Items[0].Ratio != 0.5 ||
		d.Items[0].Wait != 90*time.Second || d.Items[0].Labels["a"] != "b" || d.Ptr.Port != 1 || len(d.Tags) != 2 || d.Count != 255 {
		t.Errorf("decoded %+v", d)
	}
	if pos["items[0].wait"] != 3 || pos["ptr.port"] != 4 {
		t.Errorf("positions: %v", pos)
	}
	if e := pos.Errorf("d.yaml", "items[0].labels.zzz", "bad"); e.Line != 3 {
		t.Errorf("a path without its own line takes its parent's: %v", e)
	}
}

func TestDecodeErrors(t *testing.T) {
	var d doc
	_, err := yamlstrict.Decode("d.yaml", []byte(`name: [1]
items:
- port: eighty
  on: yes
  extra: 1
  labels: {a: b, a: c}
count: 256
tags: {a: b}
-: 1
`), &d)
	var es yamlstrict.Errors
	if !errors.As(err, &es) {
		t.Fatalf("error type %T: %v", err, err)
	}
	want := []string{
		`d.yaml:1: name: expected a string, found a list`,
		`d.yaml:3: items[0].port: "eighty": not an integer`,
		`d.yaml:4: items[0].on: "yes": not a boolean`,
		`d.yaml:5: items[0].extra: unknown field (known fields: labels, on, port, ratio, wait)`,
		`d.yaml:6: items[0].labels: duplicate key "a"`,
		`d.yaml:7: count: "256": not a non-negative integer in range`,
		`d.yaml:8: tags: expected a list, found a mapping`,
		`d.yaml:9: -: unknown field`,
	}
	if len(es) != len(want) {
		t.Errorf("got %d errors, want %d:\n%v", len(es), len(want), err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
}

func TestDecodeEmptyAndBadTarget(t *testing.T) {
	d := doc{Name: "kept"}
	if _, err := yamlstrict.Decode("e.yaml", []byte("# nothing\n"), &d); err != nil || d.Name != "kept" {
		t.Errorf("empty document: %v %+v", err, d)
	}
	if _, err := yamlstrict.Decode("e.yaml", []byte("a: 1"), d); err == nil {
		t.Error("non-pointer accepted")
	}
}
