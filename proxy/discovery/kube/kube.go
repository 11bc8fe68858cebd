package kube

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/meshbench/meshbench/proxy/discovery"
)

// Config configures EndpointSlices.
type Config struct {
	Client    kubernetes.Interface // k8s.io/client-go/kubernetes
	Namespace string               // the Service's namespace; required
	Service   string               // the Service's name; required
	// PortName is the EndpointSlice port name; empty = the slice's only
	// (TCP) port (error logged if ambiguous).
	PortName string
	Resync   time.Duration // informer resync, default 0 (none)
	Log      *slog.Logger  // default slog.Default()
}

// EndpointSlices returns a Source that follows the EndpointSlices of a Service
// through a client-go informer restricted to the Service's namespace and to
// slices labelled kubernetes.io/service-name=<Service>.
//
// The set holds the first address of every endpoint that is ready (Ready
// true or unset) and not terminating, with the port named PortName, weight
// 1. An address found in several slices counts once. Run checks at start
// that the slices can be listed (RBAC: list and watch endpointslices in the
// namespace) and fails if not; it delivers the first set once the
// informer's cache has synced.
func EndpointSlices(cfg Config) discovery.Source {
	return &kubeSource{cfg: cfg}
}

type kubeSource struct{ cfg Config }

// Run delivers the Service's set once known and after every change until
// ctx ends.
func (s *kubeSource) Run(ctx context.Context, update func([]discovery.Endpoint)) error {
	c := s.cfg
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	svc := c.Namespace + "/" + c.Service
	switch {
	case c.Client == nil:
		return fmt.Errorf("watching EndpointSlices of service %s: no Kubernetes client", svc)
	case c.Namespace == "" || c.Service == "":
		return fmt.Errorf("watching EndpointSlices of service %q: namespace and service are required", svc)
	}
	log = log.With("service", svc)
	selector := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: c.Service})

	// The informer retries a failing list forever; fail fast instead when
	// the slices cannot be listed at all (no RBAC permission, no API).
	_, err := c.Client.DiscoveryV1().EndpointSlices(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String(), Limit: 1})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("listing EndpointSlices of service %s: %w", svc, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	factory := informers.NewSharedInformerFactoryWithOptions(c.Client, c.Resync,
		informers.WithNamespace(c.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector.String() }))
	defer func() {
		cancel()
		factory.Shutdown() // waits for the informer's goroutines to end
	}()
	slicesInformer := factory.Discovery().V1().EndpointSlices()
	informer, lister := slicesInformer.Informer(), slicesInformer.Lister().EndpointSlices(c.Namespace)

	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default: // a recomputation is already due; it will see this change too
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}); err != nil {
		return fmt.Errorf("watching EndpointSlices of service %s: %w", svc, err)
	}
	if err := informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		switch {
		case errors.Is(err, io.EOF):
		case apierrors.IsResourceExpired(err) || apierrors.IsGone(err):
			log.Debug("EndpointSlice watch expired, relisting", "err", err)
		default:
			log.Warn("watching EndpointSlices, will retry", "err", err)
		}
	}); err != nil {
		return fmt.Errorf("watching EndpointSlices of service %s: %w", svc, err)
	}
	factory.StartWithContext(ctx)
	if err := factory.WaitForCacheSyncWithContext(ctx).AsError(); err != nil {
		return nil // ctx ended before the first set was known
	}

	var cur []discovery.Endpoint
	var lastWarning string
	first := true
	for {
		// Listing the informer's cache does not fail; if it ever did, the
		// last set stays in force rather than an empty one.
		if list, err := lister.List(selector); err != nil {
			log.Warn("listing cached EndpointSlices, keeping the last endpoints", "err", err)
		} else {
			eps, warning := fromSlices(list, c.PortName)
			if w := errString(warning); w != lastWarning {
				lastWarning = w
				if w != "" {
					log.Warn("ignoring part of the EndpointSlices", "err", warning)
				}
			}
			if first || !slices.Equal(eps, cur) {
				first, cur = false, eps
				log.Debug("EndpointSlices changed", "endpoints", len(eps))
				update(slices.Clone(eps))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// fromSlices computes a Service's endpoint set from its EndpointSlices: the
// first address of every endpoint that is ready (Ready unset or true) and
// not terminating, on the slice's TCP port named portName (with portName
// empty, the slice's only TCP port), weight 1, sorted, each address once.
// Slices without that port contribute nothing. It returns the set together
// with a warning that describes what it had to ignore (nil when nothing).
func fromSlices(list []*discoveryv1.EndpointSlice, portName string) ([]discovery.Endpoint, error) {
	eps := []discovery.Endpoint{}
	var warnings []error
	missingPort := false
	for _, sl := range list {
		if sl == nil {
			continue
		}
		name := sl.Namespace + "/" + sl.Name
		if sl.AddressType != discoveryv1.AddressTypeIPv4 && sl.AddressType != discoveryv1.AddressTypeIPv6 {
			warnings = append(warnings, fmt.Errorf("EndpointSlice %s: address type %q is not supported (IPv4 and IPv6 are)", name, sl.AddressType))
			continue
		}
		port, err := slicePort(sl, portName)
		if err != nil {
			warnings = append(warnings, fmt.Errorf("EndpointSlice %s: %w", name, err))
			continue
		}
		if port == 0 {
			missingPort = missingPort || len(sl.Endpoints) > 0
			continue
		}
		for _, e := range sl.Endpoints {
			if !usable(e.Conditions) || len(e.Addresses) == 0 {
				continue
			}
			ip, err := netip.ParseAddr(e.Addresses[0]) // all addresses are fungible; consumers use the first
			if err != nil || ip.Is4() != (sl.AddressType == discoveryv1.AddressTypeIPv4) || ip.Zone() != "" {
				warnings = append(warnings, fmt.Errorf("EndpointSlice %s: %q is not an %s address", name, e.Addresses[0], sl.AddressType))
				continue
			}
			eps = append(eps, discovery.Endpoint{Addr: netip.AddrPortFrom(ip, port).String(), Weight: 1})
		}
	}
	if len(eps) == 0 && missingPort && portName != "" {
		warnings = append(warnings, fmt.Errorf("no EndpointSlice has a TCP port named %q", portName))
	}
	slices.SortFunc(eps, func(a, b discovery.Endpoint) int { return cmp.Compare(a.Addr, b.Addr) })
	return slices.Compact(eps), errors.Join(warnings...)
}

// usable reports whether an endpoint should receive traffic: ready (an unset
// Ready means ready) and not terminating.
func usable(c discoveryv1.EndpointConditions) bool {
	return (c.Ready == nil || *c.Ready) && (c.Terminating == nil || !*c.Terminating)
}

// slicePort returns the number of the slice's TCP port called name, or its
// only TCP port when name is empty; 0 when the slice has no such port, and an
// error when the choice is ambiguous or the port has no number.
func slicePort(sl *discoveryv1.EndpointSlice, name string) (uint16, error) {
	var tcp []discoveryv1.EndpointPort
	for _, p := range sl.Ports {
		if p.Protocol == nil || *p.Protocol == corev1.ProtocolTCP {
			tcp = append(tcp, p)
		}
	}
	var chosen *discoveryv1.EndpointPort
	if name == "" {
		switch len(tcp) {
		case 0:
			return 0, nil
		case 1:
			chosen = &tcp[0]
		default:
			names := make([]string, len(tcp))
			for i, p := range tcp {
				names[i] = cmp.Or(ptrValue(p.Name), `""`)
			}
			return 0, fmt.Errorf("%d TCP ports (%s): name the port to use", len(tcp), strings.Join(names, ", "))
		}
	} else {
		i := slices.IndexFunc(tcp, func(p discoveryv1.EndpointPort) bool { return ptrValue(p.Name) == name })
		if i < 0 {
			return 0, nil
		}
		chosen = &tcp[i]
	}
	if chosen.Port == nil || *chosen.Port < 1 || *chosen.Port > 65535 {
		return 0, fmt.Errorf("port %q has no valid number", ptrValue(chosen.Name))
	}
	return uint16(*chosen.Port), nil
}

func ptrValue[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
