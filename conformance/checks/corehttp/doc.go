// Package corehttp holds the core-http profile's conformance checks:
// HTTP/1.1, h2c and h2 through the proxy, routing, the headers a proxy
// edits, and bodies streamed both ways.
package corehttp
