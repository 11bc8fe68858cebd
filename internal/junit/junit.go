// Package junit is the JUnit XML schema that CI systems read (GitHub's
// and GitLab's test reports, Jenkins): test suites of test cases, each
// passed, failed or skipped. The conformance suite and the regression
// gate both write it.
package junit

import (
	"encoding/xml"
	"fmt"
)

// Suites is the document: <testsuites>.
type Suites struct {
	XMLName xml.Name `xml:"testsuites"`
	Name    string   `xml:"name,attr"`
	Suites  []Suite  `xml:"testsuite"`
}

// Suite is one <testsuite>; Count sets its totals from its cases.
type Suite struct {
	Name     string `xml:"name,attr"`
	Tests    int    `xml:"tests,attr"`
	Failures int    `xml:"failures,attr"`
	Skipped  int    `xml:"skipped,attr"`
	Time     string `xml:"time,attr,omitempty"`
	Cases    []Case `xml:"testcase"`
	Output   string `xml:"system-out,omitempty"`
}

// Case is one <testcase>: passed unless it has a Failure or is Skipped.
type Case struct {
	Name      string   `xml:"name,attr"`
	Classname string   `xml:"classname,attr"`
	Time      string   `xml:"time,attr,omitempty"`
	Failure   *Failure `xml:"failure,omitempty"`
	Skipped   *Skipped `xml:"skipped,omitempty"`
	Output    string   `xml:"system-out,omitempty"`
}

// Failure is a failed case's message and details.
type Failure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// Skipped is a skipped case's reason.
type Skipped struct {
	Message string `xml:"message,attr"`
}

// Count sets the suite's totals from its cases.
func (s *Suite) Count() {
	s.Tests, s.Failures, s.Skipped = len(s.Cases), 0, 0
	for _, c := range s.Cases {
		switch {
		case c.Failure != nil:
			s.Failures++
		case c.Skipped != nil:
			s.Skipped++
		}
	}
}

// Marshal encodes the document with the XML header, every suite's totals
// counted.
func (d Suites) Marshal() ([]byte, error) {
	for i := range d.Suites {
		d.Suites[i].Count()
	}
	b, err := xml.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding JUnit XML: %w", err)
	}
	return append([]byte(xml.Header), append(b, '\n')...), nil
}
