// Package yamlstrict decodes YAML documents into Go structs strictly and
// reports every problem with the file, the line and the field path, for
// example
//
//	proxy.yaml:14: clusters[1].endpoints[0]: "10.0.0:80": missing port
//
// YAML parsing is done by go.yaml.in/yaml/v3; this package maps the parsed
// node tree onto Go values so that unknown fields, wrong types and bad
// scalars are errors that name where they are. It also remembers the line of
// every field path so that semantic validation done later can point at the
// same place (see Positions).
package yamlstrict
