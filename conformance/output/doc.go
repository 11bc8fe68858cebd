// Package output writes a conformance run: the checks × proxies matrix
// for the terminal, conformance.json, report.md, report.html and one JUnit
// XML file per proxy.
package output
