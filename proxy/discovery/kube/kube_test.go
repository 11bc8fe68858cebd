package kube

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/meshbench/meshbench/proxy/discovery"
	"github.com/meshbench/meshbench/proxy/discovery/discoverytest"
)

func ptr[T any](v T) *T { return &v }

// slice builds an EndpointSlice of service svc in namespace ns.
func slice(ns, name, svc string, at discoveryv1.AddressType, ports []discoveryv1.EndpointPort, endpoints ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns,
			Name:      name,
			Labels:    map[string]string{discoveryv1.LabelServiceName: svc},
		},
		AddressType: at,
		Ports:       ports,
		Endpoints:   endpoints,
	}
}

func port(name string, n int32) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr(name), Port: ptr(n), Protocol: ptr(corev1.ProtocolTCP)}
}

func httpPort() []discoveryv1.EndpointPort { return []discoveryv1.EndpointPort{port("http", 8080)} }

// ep is an endpoint with the given addresses; conditions are set by the
// options.
func ep(addrs ...string) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: addrs, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}}
}

func withConditions(e discoveryv1.Endpoint, ready, terminating *bool) discoveryv1.Endpoint {
	e.Conditions = discoveryv1.EndpointConditions{Ready: ready, Terminating: terminating}
	return e
}

const v4, v6, fqdn = discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN

func TestFromSlices(t *testing.T) {
	for _, tc := range []struct {
		name     string
		slices   []*discoveryv1.EndpointSlice
		portName string
		want     []discovery.Endpoint
		warning  string // a part of the warning; "" for none
	}{
		{name: "no slices"},
		{name: "nil slice", slices: []*discoveryv1.EndpointSlice{nil}},
		{name: "one slice", portName: "http",
			slices: []*discoveryv1.EndpointSlice{slice("ns", "web-1", "web", v4, httpPort(), ep("10.0.0.2"), ep("10.0.0.1"))},
			want:   discoverytest.Eps("10.0.0.1:8080", "10.0.0.2:8080")},
		{name: "conditions", portName: "http",
			slices: []*discoveryv1.EndpointSlice{slice("ns", "web-1", "web", v4, httpPort(),
				withConditions(ep("10.0.0.1"), ptr(true), nil),
				withConditions(ep("10.0.0.2"), nil, nil),              // unset means ready
				withConditions(ep("10.0.0.3"), ptr(false), nil),       // not ready
				withConditions(ep("10.0.0.4"), ptr(false), ptr(true)), // terminating
				withConditions(ep("10.0.0.5"), ptr(true), ptr(true)),  // terminating, publishNotReadyAddresses
				withConditions(ep("10.0.0.6"), ptr(true), ptr(false)), // explicitly not terminating
				withConditions(ep("10.0.0.7"), nil, ptr(true)),        // terminating, readiness unknown
			)},
			want: discoverytest.Eps("10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.6:8080")},
		{name: "named port among several", portName: "grpc",
			slices: []*discoveryv1.EndpointSlice{slice("ns", "web-1", "web", v4,
				[]discoveryv1.EndpointPort{port("http", 8080), port("grpc", 9090)}, ep("10.0.0.1"))},
			want: discoverytest.Eps("10.0.0.1:9090")},
		{name: "only port, unnamed",
			slices: []*discoveryv1.EndpointSlice{slice("ns", "web-1", "web", v4,
				[]discoveryv1.EndpointPort{{Port: ptr(int32(80))}}, ep("10.0.0.1"))},
			want: discoverytest.Eps("10.0.0.1:80")},
		{name: "only port, named, no name asked",
			slices: []*discoveryv1.EndpointSlice{slice("ns", "web-1", "web", v4, httpPort(), ep("10.0.0.1"))},
			want:   discoverytest.Eps("10.0.0.1:8080")},
		{name: "only TCP port beside UDP",
			slices: []*discoveryv1.EndpointSlice{slice("ns", "dns-1", "dns", v4, []discoveryv1.EndpointPort{
				{Name: ptr("dns"), Port: ptr(int32(53)), Protocol: ptr(corev1.ProtocolUDP)},
				{Name: ptr("dns-tcp"), Port: ptr(int32(53)), Protocol: ptr(corev1.ProtocolTCP)},
			}, ep("10.0.0.1"))},
			want: discoverytest.Eps("10.0.0.1:53")},
		{name: "UDP port of the name is not used", portName: "dns",
			slices: []*discoveryv1.EndpointSlice{slice("ns", "dns-1", "dns", v4, []discoveryv1.EndpointPort{
				{Name: ptr("dns"), Port: ptr(int32(53)), Protocol: ptr(corev1.ProtocolUDP)},
			}, ep("10.0.0.1"))},
			warning: `no EndpointSlice has a TCP port named "dns"`},
		{name: "ambiguous port",
			slices: []*discoveryv1.EndpointSlice{slice("ns", "web-1", "web", v4,
				[]discoveryv1.EndpointPort{port("http", 8080), port("metrics", 9100)}, ep("10.0.0.1"))},
			warning: `EndpointSlice ns/web-1: 2 TCP ports (http, metrics): name the port to use`},
		{name: "slice without the port contributes nothing", portName: "http",
			slices: []*discoveryv1.EndpointSlice{
				slice("ns", "web-1", "web", v4, httpPort(), ep("10.0.0.1")),
				slice("ns", "web-2", "web", v4, []discoveryv1.EndpointPort{port("admin", 9000)}, ep("10.0.0.2")),
				slice("ns", "web-3", "web", v4, nil, ep("10.0.0.3")),
			},
			want: discoverytest.Eps("10.0.0.1:8080")},
		{name: "no slice has the port", portName: "htp",
			slices:  []*discoveryv1.EndpointSlice{slice("ns", "web-1", "web", v4, httpPort(), ep("10.0.0.1"))},
			warning: `no EndpointSlice has a TCP port named "htp"`},
		{name: "no endpoints, no warning", portName: "htp",
			slices: []*discoveryv1.EndpointSlice{slice("ns", "web-1", "web", v4, httpPort())}},
		{name: "port without a number", portName: "http",
			slices: []*discoveryv1.EndpointSlice{slice("ns", "web-1", "web", v4,
				[]discoveryv1.EndpointPort{{Name: ptr("http")}}, ep("10.0.0.1"))},
			warning: `EndpointSlice ns/web-1: port "http" has no valid number`},
		{name: "IPv6", portName: "http",
			slices: []*discoveryv1.EndpointSlice{slice("ns", "web-1", "web", v6, httpPort(), ep("FD00:0:0::1"), ep("fd00::2"))},
			want:   discoverytest.Eps("[fd00::1]:8080", "[fd00::2]:8080")},
		{name: "dual stack, sorted", portName: "http",
			slices: []*discoveryv1.EndpointSlice{
				slice("ns", "web-v6", "web", v6, httpPort(), ep("fd00::1")),
				slice("ns", "web-v4", "web", v4, httpPort(), ep("10.0.0.9"), ep("10.0.0.10")),
			},
			want: discoverytest.Eps("10.0.0.10:8080", "10.0.0.9:8080", "[fd00::1]:8080")},
		{name: "FQDN slices are ignored", portName: "http",
			slices: []*discoveryv1.EndpointSlice{
				slice("ns", "web-1", "web", fqdn, httpPort(), ep("backend.example")),
				slice("ns", "web-2", "web", v4, httpPort(), ep("10.0.0.1")),
			},
			want:    discoverytest.Eps("10.0.0.1:8080"),
			warning: `EndpointSlice ns/web-1: address type "FQDN" is not supported`},
		{name: "bad addresses", portName: "http",
			slices: []*discoveryv1.EndpointSlice{
				slice("ns", "web-1", "web", v4, httpPort(), ep("fd00::1"), ep("10.0.0"), ep("10.0.0.1")),
				slice("ns", "web-2", "web", v6, httpPort(), ep("10.0.0.2"), ep("fe80::1%eth0")),
			},
			want:    discoverytest.Eps("10.0.0.1:8080"),
			warning: `EndpointSlice ns/web-1: "fd00::1" is not an IPv4 address`},
		{name: "first address only", portName: "http",
			slices: []*discoveryv1.EndpointSlice{slice("ns", "web-1", "web", v4, httpPort(), ep("10.0.0.1", "10.0.0.9"), ep())},
			want:   discoverytest.Eps("10.0.0.1:8080")},
		{name: "address in several slices counts once", portName: "http",
			slices: []*discoveryv1.EndpointSlice{
				slice("ns", "web-1", "web", v4, httpPort(), ep("10.0.0.1"), ep("10.0.0.2")),
				slice("ns", "web-2", "web", v4, httpPort(), ep("10.0.0.2"), withConditions(ep("10.0.0.1"), ptr(false), nil)),
			},
			want: discoverytest.Eps("10.0.0.1:8080", "10.0.0.2:8080")},
		{name: "port differs per slice", portName: "http",
			slices: []*discoveryv1.EndpointSlice{
				slice("ns", "web-1", "web", v4, httpPort(), ep("10.0.0.1")),
				slice("ns", "web-2", "web", v4, []discoveryv1.EndpointPort{port("http", 8081)}, ep("10.0.0.1")),
			},
			want: discoverytest.Eps("10.0.0.1:8080", "10.0.0.1:8081")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, warning := fromSlices(tc.slices, tc.portName)
			want := tc.want
			if want == nil {
				want = []discovery.Endpoint{}
			}
			if got == nil || !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
			switch {
			case tc.warning == "" && warning != nil:
				t.Errorf("unexpected warning: %v", warning)
			case tc.warning != "" && (warning == nil || !strings.Contains(warning.Error(), tc.warning)):
				t.Errorf("warning %v, want one containing %q", warning, tc.warning)
			}
		})
	}
}

func TestFromSlicesReportsEveryProblem(t *testing.T) {
	_, warning := fromSlices([]*discoveryv1.EndpointSlice{
		slice("ns", "web-1", "web", fqdn, httpPort(), ep("a.example")),
		slice("ns", "web-2", "web", v4, httpPort(), ep("bad")),
	}, "http")
	want := "EndpointSlice ns/web-1: address type \"FQDN\" is not supported (IPv4 and IPv6 are)\n" +
		"EndpointSlice ns/web-2: \"bad\" is not an IPv4 address"
	if warning == nil || warning.Error() != want {
		t.Errorf("warning:\n%v\nwant:\n%s", warning, want)
	}
}

func TestKubernetesConfigErrors(t *testing.T) {
	client := fake.NewClientset()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Namespace: "ns", Service: "web"}, "watching EndpointSlices of service ns/web: no Kubernetes client"},
		{Config{Client: client, Namespace: "ns"}, `watching EndpointSlices of service "ns/": namespace and service are required`},
		{Config{Client: client, Service: "web"}, `watching EndpointSlices of service "/web": namespace and service are required`},
	} {
		err := EndpointSlices(tc.cfg).Run(context.Background(), func([]discovery.Endpoint) { t.Error("update called") })
		if err == nil || err.Error() != tc.want {
			t.Errorf("Run(%+v) = %v, want %s", tc.cfg, err, tc.want)
		}
	}
}

func TestKubernetesForbidden(t *testing.T) {
	client := fake.NewClientset()
	client.PrependReactor("list", "endpointslices", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}, "", nil)
	})
	err := EndpointSlices(Config{Client: client, Namespace: "ns", Service: "web"}).
		Run(context.Background(), func([]discovery.Endpoint) { t.Error("update called") })
	if !apierrors.IsForbidden(err) || !strings.HasPrefix(err.Error(), "listing EndpointSlices of service ns/web: ") {
		t.Errorf("Run = %v, want a wrapped Forbidden error", err)
	}
}

// watchedClient returns a fake clientset holding objs and a channel that
// receives a value whenever a watch is opened. The fake does not replay
// changes made between the informer's list and its watch, as a real API
// server does, so tests change objects only after the watch is open.
func watchedClient(objs ...runtime.Object) (*fake.Clientset, chan struct{}) {
	client := fake.NewClientset(objs...)
	watching := make(chan struct{}, 10)
	client.PrependWatchReactor("endpointslices", func(k8stesting.Action) (bool, watch.Interface, error) {
		watching <- struct{}{}
		return false, nil, nil
	})
	return client, watching
}

func TestKubernetesInformer(t *testing.T) {
	ctx := context.Background()
	client, watching := watchedClient(slice("shop", "web-a", "web", v4, httpPort(), ep("10.0.0.1"), ep("10.0.0.2")))
	api := client.DiscoveryV1()
	logs := &discoverytest.LogBuffer{}
	r := discoverytest.NewRecorder(t)
	discoverytest.Start(t, EndpointSlices(Config{
		Client: client, Namespace: "shop", Service: "web", PortName: "http",
		Log: slog.New(slog.NewTextHandler(logs, nil)),
	}), r)
	r.Next(discoverytest.Eps("10.0.0.1:8080", "10.0.0.2:8080")...)
	<-watching

	create := func(s *discoveryv1.EndpointSlice) {
		t.Helper()
		if _, err := api.EndpointSlices(s.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	updateSlice := func(s *discoveryv1.EndpointSlice) {
		t.Helper()
		if _, err := api.EndpointSlices(s.Namespace).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	remove := func(ns, name string) {
		t.Helper()
		if err := api.EndpointSlices(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// Slices of another service or namespace are ignored: the next update
	// is the one for the slice created after them.
	create(slice("shop", "api-a", "api", v4, httpPort(), ep("10.0.1.1")))
	create(slice("other", "web-a", "web", v4, httpPort(), ep("10.0.2.1")))
	unlabelled := slice("shop", "web-x", "web", v4, httpPort(), ep("10.0.3.1"))
	unlabelled.Labels = nil
	create(unlabelled)
	create(slice("shop", "web-b", "web", v4, httpPort(), ep("10.0.0.3")))
	r.Next(discoverytest.Eps("10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080")...)

	// A pod becomes not ready.
	updateSlice(slice("shop", "web-a", "web", v4, httpPort(), ep("10.0.0.1"), withConditions(ep("10.0.0.2"), ptr(false), nil)))
	r.Next(discoverytest.Eps("10.0.0.1:8080", "10.0.0.3:8080")...)

	// A change that leaves the set as it is delivers nothing: the next
	// update is the one after it.
	updateSlice(slice("shop", "web-a", "web", v4, httpPort(), ep("10.0.0.1"), withConditions(ep("10.0.0.2"), nil, ptr(true))))
	// The pod moves to another slice and becomes ready again.
	updateSlice(slice("shop", "web-b", "web", v4, httpPort(), ep("10.0.0.3"), ep("10.0.0.2")))
	r.Next(discoverytest.Eps("10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080")...)

	remove("shop", "web-b")
	r.Next(discoverytest.Eps("10.0.0.1:8080")...)
	remove("shop", "web-a")
	r.Next()

	// A slice the source cannot use is logged.
	create(slice("shop", "web-c", "web", fqdn, httpPort(), ep("backend.example")))
	discoverytest.Eventually(t, "a warning", func() bool { return strings.Contains(logs.String(), `address type \"FQDN\" is not supported`) })
	create(slice("shop", "web-d", "web", v6, httpPort(), ep("fd00::1")))
	r.Next(discoverytest.Eps("[fd00::1]:8080")...)
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings, want the FQDN one once:\n%s", n, logs)
	}
}

func TestKubernetesEmptyService(t *testing.T) {
	client, watching := watchedClient()
	r := discoverytest.NewRecorder(t)
	discoverytest.Start(t, EndpointSlices(Config{Client: client, Namespace: "shop", Service: "web"}), r)
	r.Next() // known to be empty once synced
	<-watching
	_, err := client.DiscoveryV1().EndpointSlices("shop").Create(context.Background(),
		slice("shop", "web-a", "web", v4, []discoveryv1.EndpointPort{{Port: ptr(int32(80))}}, ep("10.0.0.1")), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.Next(discoverytest.Eps("10.0.0.1:80")...)
}

func TestKubernetesEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := EndpointSlices(Config{Client: fake.NewClientset(), Namespace: "shop", Service: "web"}).Run(ctx, func([]discovery.Endpoint) {})
	if err != nil {
		t.Errorf("Run = %v with an ended context, want nil", err)
	}
}
