package scenarios_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/scenarios"
)

// What each string field of a proxy configuration holds, for rendering.
const (
	listenAddr = "listen"   // where the process listens: a reference to its own pod or node
	reachAddr  = "reach"    // an address the process dials or names: a reference
	certPath   = "cert"     // a certificate file of the plan, mapped by the platform
	platformOf = "platform" // set only by a platform, never in a plan
)

// fieldKinds classifies every string field of config.Config (paths as
// typePaths writes them) that is not plain data. A field missing from
// this table must hold no address: the test fails for a field the table
// does not know, so that every new field is classified.
var fieldKinds = map[string]string{
	"admin":                                 listenAddr,
	"listeners[].address":                   listenAddr,
	"clusters[].endpoints[]":                reachAddr,
	"clusters[].weights{key}":               reachAddr,
	"clusters[].via.gateways{key}":          reachAddr,
	"clusters[].via.gateways[]":             reachAddr,
	"clusters[].original_dst.allowed[]":     reachAddr,
	"clusters[].tls.server_identities{key}": reachAddr,
	"listeners[].tls.cert_file":             certPath,
	"listeners[].tls.key_file":              certPath,
	"listeners[].tls.client_ca_file":        certPath,
	"clusters[].tls.ca_file":                certPath,
	"clusters[].tls.cert_file":              certPath,
	"clusters[].tls.key_file":               certPath,
	"clusters[].tls.certs[].cert_file":      certPath,
	"clusters[].tls.certs[].key_file":       certPath,
	"discovery_server":                      platformOf,
	"clusters[].endpoints_file.path":        platformOf,
	"clusters[].kubernetes.namespace":       platformOf,
	"clusters[].kubernetes.service":         platformOf,
	"clusters[].kubernetes.port":            platformOf,
}

// plainFields hold no address and no file: names, protocols, matches,
// identities, header names.
var plainFields = []string{
	"listeners[].name", "listeners[].direction", "listeners[].protocol", "listeners[].tls.min_version",
	"listeners[].source_service", "listeners[].authz.allow[].identities[]", "listeners[].authz.allow[].path_prefix",
	"listeners[].authz.allow[].methods[]", "listeners[].escaped_slashes", "listeners[].routes[].name",
	"listeners[].routes[].match.authority", "listeners[].routes[].match.path", "listeners[].routes[].match.path_prefix",
	"listeners[].routes[].match.headers[].name", "listeners[].routes[].match.headers[].exact",
	"listeners[].routes[].match.headers[].regex", "listeners[].routes[].match.grpc_service",
	"listeners[].routes[].match.grpc_method", "listeners[].routes[].match.source_identity", "listeners[].routes[].cluster",
	"listeners[].routes[].request_headers.add{key}", "listeners[].routes[].request_headers.add[]",
	"listeners[].routes[].request_headers.remove[]", "listeners[].routes[].retry.on[]",
	"clusters[].name", "clusters[].protocol", "clusters[].balancer.policy", "clusters[].balancer.hash_header",
	"clusters[].original_dst.header", "clusters[].via.header", "clusters[].tls.mode", "clusters[].tls.server_identity",
	"clusters[].tls.server_identities[]", "clusters[].tls.certs{key}",
}

// typePaths returns the path of every string field reachable in t:
// "listeners[].address", "clusters[].via.gateways{key}" (a map's key),
// "clusters[].via.gateways[]" (its values).
func typePaths(t reflect.Type, path string, out *[]string) {
	switch t.Kind() {
	case reflect.Pointer:
		typePaths(t.Elem(), path, out)
	case reflect.String:
		*out = append(*out, strings.TrimPrefix(path, "."))
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			typePaths(f.Type, path+"."+name, out)
		}
	case reflect.Slice:
		typePaths(t.Elem(), path+"[]", out)
	case reflect.Map:
		typePaths(t.Key(), path+"{key}", out)
		typePaths(t.Elem(), path+"[]", out)
	}
}

// build returns a value of type t whose only non-zero string is value, at
// path target (containers on the way hold one element), and whether the
// target lies in t.
func build(t reflect.Type, path, target, value string) (reflect.Value, bool) {
	v := reflect.New(t).Elem()
	switch t.Kind() {
	case reflect.Pointer:
		e, ok := build(t.Elem(), path, target, value)
		if ok {
			p := reflect.New(t.Elem())
			p.Elem().Set(e)
			return p, true
		}
	case reflect.String:
		if strings.TrimPrefix(path, ".") == target {
			v.SetString(value)
			return v, true
		}
	case reflect.Struct:
		found := false
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if e, ok := build(f.Type, path+"."+name, target, value); ok {
				v.Field(i).Set(e)
				found = true
			}
		}
		return v, found
	case reflect.Slice:
		if e, ok := build(t.Elem(), path+"[]", target, value); ok {
			return reflect.Append(v, e), true
		}
	case reflect.Map:
		m := reflect.MakeMap(t)
		if k, ok := build(t.Key(), path+"{key}", target, value); ok {
			m.SetMapIndex(k, reflect.New(t.Elem()).Elem())
			return m, true
		}
		if e, ok := build(t.Elem(), path+"[]", target, value); ok {
			// The key is what the map holds: an address or a name.
			key := "k"
			if k := fieldKinds[strings.TrimPrefix(path, ".")+"{key}"]; k == reachAddr {
				key = scenarios.PodRef("k", scenarios.PortNameHTTP)
			}
			m.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), e)
			return m, true
		}
	}
	return v, false
}

// markResolver resolves every reference to a recognisable address.
type markResolver struct{ services []string }

func (markResolver) Listen(r scenarios.Ref) (string, error) { return "0.0.0.0:" + r.Port, nil }
func (markResolver) Reach(r scenarios.Ref) (string, error) {
	return "10.9.9.9:" + r.Kind + "-" + r.Name + "-" + r.Port, nil
}
func (m *markResolver) Service(cl *config.Cluster, r scenarios.Ref) error {
	m.services = append(m.services, r.Name)
	cl.Endpoints = []string{"10.9.9.1:1", "10.9.9.2:1"}
	return nil
}
func (markResolver) CertPath(p string) (string, error) { return "mapped/" + p, nil }

// rendered returns every string of c, sorted.
func rendered(c *config.Config) []string {
	var out []string
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.String:
			if v.String() != "" {
				out = append(out, v.String())
			}
		case reflect.Struct:
			for i := range v.NumField() {
				walk(v.Field(i))
			}
		case reflect.Slice:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.Map:
			for it := v.MapRange(); it.Next(); {
				walk(it.Key())
				walk(it.Value())
			}
		}
	}
	walk(reflect.ValueOf(c))
	slices.Sort(out)
	return out
}

// TestRenderCoversEveryAddressField walks every string field of a proxy
// configuration: a reference in an address field is resolved, a
// certificate path is mapped, a platform's field in a plan is refused,
// and a reference in any other field stops the rendering, so that an
// address field the renderer does not know can never carry a reference
// to a process.
func TestRenderCoversEveryAddressField(t *testing.T) {
	var paths []string
	typePaths(reflect.TypeOf(config.Config{}), "", &paths)
	for _, p := range paths {
		if _, ok := fieldKinds[p]; !ok && !slices.Contains(plainFields, p) {
			t.Errorf("config field %s is not classified: say in fieldKinds whether it holds an address (and resolve it in RenderConfig) or list it in plainFields", p)
		}
	}
	for p := range fieldKinds {
		if !slices.Contains(paths, p) {
			t.Errorf("fieldKinds names %s, which config.Config does not have", p)
		}
	}
	ref := scenarios.PodRef("p", scenarios.PortNameHTTP)
	for _, p := range paths {
		kind := fieldKinds[p]
		value := ref
		switch kind {
		case certPath:
			value = "certs/x.pem"
		case platformOf:
			value = "x"
		}
		v, ok := build(reflect.TypeOf(config.Config{}), "", p, value)
		if !ok {
			t.Fatalf("%s: could not build a configuration with it", p)
		}
		c := v.Interface().(config.Config)
		out, err := scenarios.RenderConfig(&c, &markResolver{})
		switch kind {
		case listenAddr, reachAddr:
			want := map[string]string{listenAddr: "0.0.0.0:http", reachAddr: "10.9.9.9:pod-p-http"}[kind]
			if err != nil || !slices.Contains(rendered(out), want) {
				t.Errorf("%s: a reference renders to %v (err %v), want %s", p, rendered(out), err, want)
			}
		case certPath:
			if err != nil || !slices.Contains(rendered(out), "mapped/certs/x.pem") {
				t.Errorf("%s: a certificate path renders to %v (err %v)", p, rendered(out), err)
			}
		case platformOf:
			if err == nil {
				t.Errorf("%s: a platform's field in a plan's configuration was accepted", p)
			}
		default:
			if err == nil || !strings.Contains(err.Error(), "unresolved references") {
				t.Errorf("%s: a reference in a field that holds no address gave %v, want unresolved references", p, err)
			}
		}
	}
}

func TestRenderServiceAndLiterals(t *testing.T) {
	svc := scenarios.ServiceRef("echo", scenarios.PortNameGRPC)
	r := &markResolver{}
	c := &config.Config{Clusters: []config.Cluster{{Name: "echo", Endpoints: []string{svc}}}}
	out, err := scenarios.RenderConfig(c, r)
	if err != nil || !slices.Equal(r.services, []string{"echo"}) || len(out.Clusters[0].Endpoints) != 2 {
		t.Fatalf("service reference: %v, services %v, %+v", err, r.services, out)
	}
	if c.Clusters[0].Endpoints[0] != svc {
		t.Errorf("rendering changed the plan's configuration: %v", c.Clusters[0].Endpoints)
	}
	for name, bad := range map[string]*config.Config{
		"literal endpoint":       {Clusters: []config.Cluster{{Name: "a", Endpoints: []string{"127.0.0.1:80"}}}},
		"literal listener":       {Listeners: []config.Listener{{Name: "l", Address: "127.0.0.1:80"}}},
		"service and a pod":      {Clusters: []config.Cluster{{Name: "a", Endpoints: []string{svc, scenarios.PodRef("p", "http")}}}},
		"service as a gateway":   {Clusters: []config.Cluster{{Name: "a", Endpoints: []string{scenarios.PodRef("p", "http")}, Via: &config.Via{Gateways: map[string]string{scenarios.PodRef("p", "http"): svc}}}}},
		"listen on a service":    {Admin: svc},
		"unknown port name":      {Admin: "@pod.p:9901"},
		"unknown reference kind": {Admin: "@host.p:admin"},
	} {
		if _, err := scenarios.RenderConfig(bad, r); err == nil {
			t.Errorf("%s: rendered", name)
		}
	}
}
