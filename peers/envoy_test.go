package peers_test

import (
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	// The typed configs the bootstraps name, registered for Any resolution.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/meshbench/meshbench/peers"
)

// validateBootstrap decodes an Envoy bootstrap strictly (an unknown field
// is an error) and runs go-control-plane's generated validation on it and
// on every typed config inside it.
func validateBootstrap(data []byte) error {
	var b bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{}).Unmarshal(data, &b); err != nil {
		return err
	}
	if err := b.ValidateAll(); err != nil {
		return err
	}
	var walkErr error
	walkAny(b.ProtoReflect().Interface(), func(a *anypb.Any) {
		m, err := a.UnmarshalNew()
		if err != nil {
			walkErr = err
			return
		}
		if v, ok := m.(interface{ ValidateAll() error }); ok && walkErr == nil {
			walkErr = v.ValidateAll()
		}
	})
	return walkErr
}

// walkAny calls fn for every Any in m and in the messages the Anys hold,
// depth first.
func walkAny(m proto.Message, fn func(*anypb.Any)) {
	if a, ok := m.(*anypb.Any); ok {
		fn(a)
		if inner, err := a.UnmarshalNew(); err == nil {
			walkAny(inner, fn)
		}
		return
	}
	r := m.ProtoReflect()
	r.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				walkAny(l.Get(i).Message().Interface(), fn)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				walkAny(mv.Message().Interface(), fn)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			walkAny(v.Message().Interface(), fn)
		}
		return true
	})
}

// TestEnvoyBootstrapValid validates the bootstrap of every case Envoy
// renders.
func TestEnvoyBootstrapValid(t *testing.T) {
	rendered := 0
	for _, tc := range cases {
		t.Run(tc.name+"."+strings.Join(tc.traffic, "+"), func(t *testing.T) {
			_, inst := render(t, peers.Envoy{}, loadCase(t, tc.name), tc.traffic)
			if inst == nil {
				t.Skip("not applicable")
			}
			rendered++
			if err := validateBootstrap(inst.Files[0].Data); err != nil {
				t.Errorf("envoy.json does not validate: %v", err)
			}
		})
	}
	if rendered < len(cases)-1 {
		t.Errorf("Envoy rendered %d of %d cases", rendered, len(cases))
	}
}

// TestEnvoyValidationFails shows the validation catching broken
// bootstraps: a misspelt field, and a value go-control-plane's rules
// refuse.
func TestEnvoyValidationFails(t *testing.T) {
	_, inst := render(t, peers.Envoy{}, loadCase(t, "sidecar-outbound"), []string{peers.TrafficHTTP1})
	good := string(inst.Files[0].Data)
	if err := validateBootstrap([]byte(good)); err != nil {
		t.Fatalf("the unbroken bootstrap: %v", err)
	}
	for name, broken := range map[string]string{
		"unknown field":      strings.Replace(good, `"lb_policy"`, `"lb_polcy"`, 1),
		"zero choice count":  strings.Replace(good, `"choice_count": 2`, `"choice_count": 1`, 1),
		"empty cluster name": strings.Replace(good, `"cluster": "echo"`, `"cluster": ""`, 1),
		// Inside the HTTP connection manager's typed config.
		"empty stat prefix": strings.Replace(good, `"stat_prefix": "outbound"`, `"stat_prefix": ""`, 1),
	} {
		if broken == good {
			t.Fatalf("%s: the replacement changed nothing", name)
		}
		if err := validateBootstrap([]byte(broken)); err == nil {
			t.Errorf("%s: validated", name)
		}
	}
}
