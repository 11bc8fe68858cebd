//go:build !unix

package main

// adaptiveStacks does nothing where the proxy cannot re-execute itself.
func adaptiveStacks() {}
