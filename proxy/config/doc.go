// Package config is the one neutral description of what a proxy must do:
// listeners, routes, clusters and the admin address. The reference proxy
// runs it directly; peer adapters translate it into their own formats.
//
// Files are YAML, decoded strictly: an unknown field, a value of the wrong
// type or a value that fails validation is an error that names the file, the
// line and the field path. Load returns every problem at once.
package config
