package kube

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/meshbench/meshbench/peers"
	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/scenarios"
	"github.com/meshbench/meshbench/scenarios/platform"
)

// PeerImage is a peer proxy's image, built from the host's binary (for
// kind, kind/image.PeerFiles).
type PeerImage struct {
	Ref     string // the image reference the nodes have
	Binary  string // the binary's path in the image
	Version string // the binary's version, for the run's facts
}

// peerDir is where a peer runs in its container: an emptyDir it may
// write to (pid file, temporary files, internal sockets), with its
// configuration files mounted into it one by one.
const peerDir = "/run/peer"

// cellPeer is the peer a cell runs in place of meshproxy.
type cellPeer struct {
	adapter peers.Adapter
	image   PeerImage
	traffic []string
}

// proxyFiles renders a proxy's configuration for the cluster with r: for
// meshproxy one file, config.yaml; for a peer, the peer's native files,
// which are keyed prefix+name in the ConfigMap. args is a peer's command
// line (nil for meshproxy).
func (t *target) proxyFiles(px *scenarios.Proxy, r *resolver, prefix string) (files map[string]string, args []string, err error) {
	c, err := r.render(px)
	if err != nil {
		return nil, nil, err
	}
	if t.Peer == nil {
		for i := range c.Clusters {
			if c.Clusters[i].Kubernetes != nil {
				if c.DiscoveryServer, err = t.discoveryServer(); err != nil {
					return nil, nil, fmt.Errorf("configuring %s: %w", px.Name, err)
				}
			}
		}
		b, err := c.YAML()
		if err != nil {
			return nil, nil, fmt.Errorf("configuring %s: %w", px.Name, err)
		}
		return map[string]string{prefix + "yaml": string(b)}, nil, nil
	}
	inst, err := peers.Render(t.Peer.adapter, c, peers.Options{Name: px.Name, Dir: peerDir, SocketDir: peerDir, User: "root",
		Traffic: t.Peer.traffic, Workers: platform.ProxyWorkers})
	if err != nil {
		return nil, nil, fmt.Errorf("configuring %s: %w", px.Name, err)
	}
	t.Notes = peers.AddNotes(t.Notes, inst.Notes...)
	files = map[string]string{}
	for _, f := range inst.Files {
		files[prefix+f.Path] = string(f.Data)
	}
	return files, inst.Args, nil
}

// peerContainer runs the cell's peer with its files from a ConfigMap
// (keys prefix+name, prefix may name $(NODE_NAME)) mounted into peerDir.
func peerContainer(t *target, px *scenarios.Proxy, configMap, prefix string, names, args []string) (corev1.Container, []corev1.Volume) {
	c := corev1.Container{
		Name: "proxy", Image: t.Peer.image.Ref, ImagePullPolicy: corev1.PullIfNotPresent,
		Command:    append([]string{t.Peer.image.Binary}, args...),
		WorkingDir: peerDir,
		Env: []corev1.EnvVar{{Name: "GOMAXPROCS", Value: strconv.Itoa(platform.ProxyWorkers)},
			{Name: "HOME", Value: peerDir}, {Name: "XDG_CONFIG_HOME", Value: peerDir}, {Name: "XDG_DATA_HOME", Value: peerDir}},
		Ports: proxyPorts(px.Config),
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(scenarios.PortAdmin)}},
			PeriodSeconds: 1},
		VolumeMounts: []corev1.VolumeMount{{Name: "peer", MountPath: peerDir}},
		Resources:    t.ProxyResources,
	}
	for _, n := range slices.Sorted(slices.Values(names)) {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "config", MountPath: peerDir + "/" + n, SubPathExpr: prefix + n, ReadOnly: true})
	}
	vols := []corev1.Volume{
		{Name: "peer", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: configMap}}}},
	}
	return c, vols
}

// peerFileNames returns the peer's file names among a proxy's ConfigMap
// keys (without the prefix).
func peerFileNames(files map[string]string, prefix string) []string {
	var out []string
	for k := range files {
		if n, ok := strings.CutPrefix(k, prefix); ok && n != "" {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// staticEndpoints makes the pods of a service the static endpoints of a
// cluster, for a peer, which cannot follow EndpointSlices: every pod must
// have its IP by then.
func (r *resolver) staticEndpoints(cl *config.Cluster, ref scenarios.Ref) error {
	pods := r.t.ServicePods[ref.Name]
	if len(pods) == 0 {
		return fmt.Errorf("service %s has no pods", ref.Name)
	}
	for _, pod := range pods {
		ip := r.t.PodIPs[pod]
		if ip == "" {
			return fmt.Errorf("pod %s of service %s has no IP yet", pod, ref.Name)
		}
		at, err := ref.At(ip)
		if err != nil {
			return err
		}
		cl.Endpoints = append(cl.Endpoints, at)
	}
	return nil
}
