// Package names holds the rules for the names meshbench accepts from its
// users and passes on: to Kubernetes (DNSLabel) and into file names and
// IDs (Safe).
package names
