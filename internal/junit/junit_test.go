package junit_test

import (
	"encoding/xml"
	"strings"
	"testing"

	"github.com/meshbench/meshbench/internal/junit"
)

func TestMarshalCounts(t *testing.T) {
	d := junit.Suites{Name: "n", Suites: []junit.Suite{{Name: "s", Cases: []junit.Case{
		{Name: "pass"},
		{Name: "fail", Failure: &junit.Failure{Message: "m", Text: "t"}},
		{Name: "skip", Skipped: &junit.Skipped{Message: "why"}},
	}}}}
	b, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), xml.Header) {
		t.Errorf("no XML header: %s", b)
	}
	var back junit.Suites
	if err := xml.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	s := back.Suites[0]
	if s.Tests != 3 || s.Failures != 1 || s.Skipped != 1 || s.Cases[1].Failure.Text != "t" {
		t.Errorf("suite %+v", s)
	}
}
