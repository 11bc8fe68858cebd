package scenarios

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/meshbench/meshbench/proxy/config"
)

// Resolver is one platform's answer to the references of one process: a
// proxy, or the load generator. The platform gives each process its own
// (a process reaches its own pod on loopback in a cluster, other pods by
// their IPs).
type Resolver interface {
	// Listen resolves where the process itself listens (a listener, the
	// admin server): a reference to its own pod or node.
	Listen(Ref) (string, error)
	// Reach resolves a host:port the process dials or names as a
	// destination (endpoints, gateways, allowed destinations, the
	// identities by address).
	Reach(Ref) (string, error)
	// Service makes a service reference the endpoint source of cl: its
	// pods' addresses as Endpoints, or a discovery source (Kubernetes).
	Service(cl *config.Cluster, r Ref) error
	// CertPath maps a certificate path of the plan (below CertsDir) to
	// the one the process reads.
	CertPath(path string) (string, error)
}

// RenderConfig returns a copy of a plan's proxy configuration for one
// process: every address field resolved through r. An address field of the
// plan holds a reference or nothing: a literal address, or an endpoint
// source only a platform chooses (kubernetes, endpoints_file, kubeconfig),
// is an error, and so is a reference left anywhere in the result.
func RenderConfig(c *config.Config, r Resolver) (*config.Config, error) {
	rd := renderer{r: r}
	out := *c
	if c.DiscoveryServer != "" {
		return nil, errors.New("discovery_server: a platform's setting, not a plan's")
	}
	var err error
	if out.Admin, err = rd.listen(c.Admin); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	out.Listeners = slices.Clone(c.Listeners)
	for i := range out.Listeners {
		l := &out.Listeners[i]
		if l.Address, err = rd.listen(l.Address); err != nil {
			return nil, fmt.Errorf("listener %s: %w", l.Name, err)
		}
		if t := l.TLS; t != nil {
			nt := *t
			if err := rd.certs(&nt.CertFile, &nt.KeyFile, &nt.ClientCAFile); err != nil {
				return nil, fmt.Errorf("listener %s: tls: %w", l.Name, err)
			}
			l.TLS = &nt
		}
	}
	out.Clusters = slices.Clone(c.Clusters)
	for i := range out.Clusters {
		if err := rd.cluster(&out.Clusters[i]); err != nil {
			return nil, fmt.Errorf("cluster %s: %w", out.Clusters[i].Name, err)
		}
	}
	if err := CheckResolved(&out); err != nil {
		return nil, err
	}
	return &out, nil
}

// renderer resolves the fields of one configuration.
type renderer struct{ r Resolver }

// resolve resolves one address field with how; empty stays empty.
func (rd renderer) resolve(s string, how func(Ref) (string, error)) (string, error) {
	if s == "" {
		return "", nil
	}
	ref, err := ParseRef(s)
	if err != nil {
		return "", err
	}
	a, err := how(ref)
	if err != nil {
		return "", fmt.Errorf("%s: %w", s, err)
	}
	return a, nil
}

// listen resolves where the process listens: its own pod or node.
func (rd renderer) listen(s string) (string, error) {
	return rd.resolve(s, func(r Ref) (string, error) {
		if r.Kind == RefService {
			return "", errors.New("a process listens on its pod or node, not on a service")
		}
		return rd.r.Listen(r)
	})
}

// reach resolves an address the process dials: a pod or a node (a
// service is a cluster's endpoint source, not an address).
func (rd renderer) reach(s string) (string, error) {
	return rd.resolve(s, func(r Ref) (string, error) {
		if r.Kind == RefService {
			return "", errors.New("a service reference is only valid as a cluster's only endpoint")
		}
		return rd.r.Reach(r)
	})
}

func (rd renderer) reachAll(in []string) ([]string, error) {
	if in == nil {
		return nil, nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		var err error
		if out[i], err = rd.reach(s); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// reachKeys resolves the keys of a map by address.
func reachKeys[V any](rd renderer, in map[string]V) (map[string]V, error) {
	if in == nil {
		return nil, nil
	}
	out := make(map[string]V, len(in))
	for _, k := range slices.Sorted(maps.Keys(in)) {
		a, err := rd.reach(k)
		if err != nil {
			return nil, err
		}
		if _, dup := out[a]; dup {
			return nil, fmt.Errorf("%s: two references resolve to %s", k, a)
		}
		out[a] = in[k]
	}
	return out, nil
}

// certs maps certificate paths in place.
func (rd renderer) certs(paths ...*string) error {
	for _, p := range paths {
		if *p == "" {
			continue
		}
		m, err := rd.r.CertPath(*p)
		if err != nil {
			return err
		}
		*p = m
	}
	return nil
}

func (rd renderer) cluster(cl *config.Cluster) error {
	if cl.Kubernetes != nil || cl.EndpointsFile != nil {
		return errors.New("kubernetes and endpoints_file are a platform's choice: name the service by reference (" + ServiceRef("<service>", PortNameHTTP) + ")")
	}
	var err error
	if ref, ok := ServiceOf(cl); ok {
		if len(cl.Weights) > 0 {
			return errors.New("weights: a service's pods have no weights")
		}
		cl.Endpoints = nil
		if err := rd.r.Service(cl, ref); err != nil {
			return fmt.Errorf("endpoints: %s: %w", ref, err)
		}
	} else if cl.Endpoints, err = rd.reachAll(cl.Endpoints); err != nil {
		return fmt.Errorf("endpoints: %w", err)
	}
	if cl.Weights, err = reachKeys(rd, cl.Weights); err != nil {
		return fmt.Errorf("weights: %w", err)
	}
	if v := cl.Via; v != nil {
		nv := *v
		gw, err := reachKeys(rd, v.Gateways)
		if err == nil {
			for k, g := range gw {
				if gw[k], err = rd.reach(g); err != nil {
					break
				}
			}
		}
		if err != nil {
			return fmt.Errorf("via: %w", err)
		}
		nv.Gateways = gw
		cl.Via = &nv
	}
	if od := cl.OriginalDst; od != nil {
		nod := *od
		if nod.Allowed, err = rd.reachAll(od.Allowed); err != nil {
			return fmt.Errorf("original_dst: %w", err)
		}
		cl.OriginalDst = &nod
	}
	if t := cl.TLS; t != nil {
		nt := *t
		if err := rd.certs(&nt.CAFile, &nt.CertFile, &nt.KeyFile); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		if nt.ServerIdentities, err = reachKeys(rd, t.ServerIdentities); err != nil {
			return fmt.Errorf("tls: server_identities: %w", err)
		}
		if t.Certs != nil {
			nt.Certs = make(map[string]config.CertPair, len(t.Certs))
			for svc, p := range t.Certs {
				if err := rd.certs(&p.CertFile, &p.KeyFile); err != nil {
					return fmt.Errorf("tls: certs: %w", err)
				}
				nt.Certs[svc] = p
			}
		}
		cl.TLS = &nt
	}
	return nil
}

// ResolveTarget resolves a load target: a reference, or a URL whose host
// is one (http://@pod.client-0:outbound/).
func ResolveTarget(target string, r Resolver) (string, error) {
	scheme, rest, isURL := strings.Cut(target, "://")
	if !isURL {
		scheme, rest = "", target
	}
	hostPort, path, hasPath := strings.Cut(rest, "/")
	if hostPort == "" {
		return "", fmt.Errorf("target %q: no host", target)
	}
	a, err := renderer{r: r}.reach(hostPort)
	if err != nil {
		return "", fmt.Errorf("target %q: %w", target, err)
	}
	if isURL {
		a = scheme + "://" + a
	}
	if hasPath {
		a += "/" + path
	}
	return a, nil
}

// CheckResolved fails when any string in v (fields, elements, map keys
// and values, followed through pointers) is still a reference: nothing
// unresolved may reach a process.
func CheckResolved(v any) error {
	var bad []string
	walkStrings(reflect.ValueOf(v), "", func(path, s string) {
		if IsRef(s) {
			bad = append(bad, fmt.Sprintf("%s: %s", strings.TrimPrefix(path, "."), s))
		}
	})
	if len(bad) > 0 {
		return fmt.Errorf("unresolved references: %s", strings.Join(bad, ", "))
	}
	return nil
}

// walkStrings calls fn for every string reachable from v, with its path
// (".listeners[0].address", ".clusters[1].via.gateways{key}").
func walkStrings(v reflect.Value, path string, fn func(path, s string)) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkStrings(v.Elem(), path, fn)
		}
	case reflect.String:
		fn(path, v.String())
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			if t.Field(i).IsExported() {
				walkStrings(v.Field(i), path+"."+fieldName(t.Field(i)), fn)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walkStrings(v.Index(i), fmt.Sprintf("%s[%d]", path, i), fn)
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			walkStrings(it.Key(), path+"{key}", fn)
			walkStrings(it.Value(), fmt.Sprintf("%s[%v]", path, it.Key()), fn)
		}
	}
}

// fieldName is a field's YAML name, or its Go name without one.
func fieldName(f reflect.StructField) string {
	if n, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); n != "" && n != "-" {
		return n
	}
	return f.Name
}
