package scenarios

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meshbench/meshbench/proxy/identity"
)

// DeployAllowance is the time a cell is assumed to spend on deploying and
// tearing down its plan, for estimates.
const DeployAllowance = 3 * time.Second

// EstimatedDuration estimates how long a run with options o takes: every
// cell's warmup and measured part plus DeployAllowance.
func (s *Scenario) EstimatedDuration(o CellOptions) (time.Duration, error) {
	cells, err := s.Cells(o)
	if err != nil {
		return 0, err
	}
	l := s.effectiveLoad(o.Quick)
	return time.Duration(len(cells)) * (l.Duration + l.Warmup + DeployAllowance), nil
}

// PlanResolver gives the Resolver of every process of a plan on a platform
// whose processes share one address space (the local platform).
type PlanResolver func(*Plan) (Resolver, error)

// Describe writes what a run with options o would do, without doing it
// (meshbench run --dry-run): the dimensions, the cells in run order, and
// for each variant its plan: nodes, pods, events, load and every proxy
// with its generated configuration, its references resolved by resolve, or
// as references when resolve is nil.
func (s *Scenario) Describe(w io.Writer, o CellOptions, resolve PlanResolver) error {
	var b bytes.Buffer
	cells, err := s.Cells(o)
	if err != nil {
		return err
	}
	est, err := s.EstimatedDuration(o)
	if err != nil {
		return err
	}
	l := s.effectiveLoad(o.Quick)
	fmt.Fprintf(&b, "scenario %s (%s)\n", s.Name, s.File)
	if s.Description != "" {
		fmt.Fprintf(&b, "  %s\n", strings.TrimSpace(s.Description))
	}
	dims := s.Dimensions()
	if len(dims) == 0 {
		fmt.Fprintf(&b, "dimensions: none (one variant)\n")
	} else {
		fmt.Fprintf(&b, "dimensions: %s\n", strings.Join(dims, ", "))
	}
	reps := s.repeats(o)
	fmt.Fprintf(&b, "cells: %d (%d variants × %d repeats); estimated %v (each cell %v warmup + %v measured + %v deploy)\n",
		len(cells), len(cells)/max(reps, 1), reps, est.Round(time.Second), l.Warmup, l.Duration, DeployAllowance)
	fmt.Fprintf(&b, "\ncells, in run order:\n")
	for _, c := range cells {
		fmt.Fprintf(&b, "  %s\n", c.ID)
	}
	for _, c := range cells {
		if c.Repeat != 1 {
			break
		}
		p, err := s.Plan(c, PlanOptions{Quick: o.Quick})
		if err != nil {
			return fmt.Errorf("describing %s: %w", s.Name, err)
		}
		if err := describePlan(&b, p, dims, resolve); err != nil {
			return fmt.Errorf("describing %s: %w", s.Name, err)
		}
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("writing the description of %s: %w", s.Name, err)
	}
	return nil
}

// describePlan writes one variant's plan.
func describePlan(b *bytes.Buffer, p *Plan, dims []string, resolve PlanResolver) error {
	var r Resolver
	if resolve != nil {
		var err error
		if r, err = resolve(p); err != nil {
			return err
		}
	}
	// host is where a pod or a node is, or "-" without a resolver.
	host := func(ref string) (string, error) {
		if r == nil {
			return "-", nil
		}
		a, err := ResolveTarget(ref, r)
		if err != nil {
			return "", err
		}
		h, _, err := net.SplitHostPort(a)
		return h, err
	}
	labels := make([]string, len(dims))
	for i, d := range dims {
		labels[i] = d + "=" + p.Cell.Labels[d]
	}
	fmt.Fprintf(b, "\nvariant %s {%s}\n", p.Cell.Variant, strings.Join(labels, " "))
	fmt.Fprintf(b, "  topology %s, proxy %s, mtls %s\n", p.Topology, p.ProxyImpl, cmp.Or(p.MTLS, MTLSOff))
	if len(p.Identities) > 0 {
		ids := make([]string, len(p.Identities))
		for i, svc := range p.Identities {
			ids[i] = svc + "=" + identity.ServiceID(p.TrustDomain, p.Namespace, svc).String()
		}
		fmt.Fprintf(b, "  identities (certificates in %s/): %s\n", CertsDir, strings.Join(ids, " "))
	}
	tw := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  nodes:\n")
	for _, nd := range p.Nodes {
		h, err := host(NodeRef(nd.Name, PortNameInbound))
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "    %s\t%s\n", nd.Name, h)
	}
	fmt.Fprintf(tw, "  pods:\n")
	for _, pod := range p.Pods {
		backend := "load generator"
		if pod.Backend != nil {
			backend = describeBackend(*pod.Backend)
		}
		sidecar := "-"
		if pod.Sidecar != "" {
			sidecar = pod.Sidecar
		}
		h, err := host(PodRef(pod.Name, PortNameHTTP))
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "    %s\t%s\t%s\tsidecar %s\t%s\n", pod.Name, pod.Node, h, sidecar, backend)
	}
	if len(p.Events) > 0 {
		fmt.Fprintf(tw, "  events:\n")
		for _, e := range p.Events {
			fmt.Fprintf(tw, "    +%v\t%s\t%s\n", e.At, e.Pod, describeBackend(e.Backend))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	ld := p.Load
	rate := fmt.Sprintf("%v req/s", ld.Rate)
	if ld.Search != nil {
		rate = fmt.Sprintf("the highest rate up to %v req/s meeting %s", ld.Search.Max, ld.Search.Objective)
	}
	resolveAll := func(ts []string) (string, error) {
		out := slices.Clone(ts)
		if r != nil {
			for i, t := range ts {
				var err error
				if out[i], err = ResolveTarget(t, r); err != nil {
					return "", err
				}
			}
		}
		return strings.Join(out, " "), nil
	}
	perRequest := ""
	if ld.NewConnectionPerRequest {
		perRequest = ", a new connection per request"
	}
	if len(ld.Mix) == 0 {
		fmt.Fprintf(b, "  load: %s from %s, %s to %s, %d connections × %d streams%s, %v warmup + %v measured, timeout %v\n",
			ld.Protocol, ld.ClientPod, rate, ld.Authority, ld.Connections, ld.Streams, perRequest, ld.Warmup, ld.Duration, ld.Timeout)
		targets, err := resolveAll(ld.Targets)
		if err != nil {
			return err
		}
		fmt.Fprintf(b, "    targets: %s\n", targets)
	} else {
		fmt.Fprintf(b, "  load: a mix of %d streams from %s, %s in all%s, %v warmup + %v measured, timeout %v\n",
			len(ld.Mix), ld.ClientPod, rate, perRequest, ld.Warmup, ld.Duration, ld.Timeout)
	}
	for _, st := range ld.Mix {
		share := fmt.Sprintf("%v req/s", st.Rate)
		if st.Share > 0 {
			share = fmt.Sprintf("%g%% of the rate", 100*st.Share)
		}
		targets, err := resolveAll(st.Targets)
		if err != nil {
			return err
		}
		fmt.Fprintf(b, "    stream %s: %s to %s, %s, %d connections × %d streams; targets: %s\n",
			st.Name, st.Protocol, st.Authority, share, st.Connections, st.Streams, targets)
	}
	if len(p.Proxies) == 0 {
		fmt.Fprintf(b, "  proxies: none\n")
	}
	for _, px := range p.Proxies {
		owner := "on " + px.Node
		if px.Pod != "" {
			owner = "of pod " + px.Pod + " on " + px.Node
		}
		c := px.Config
		if r != nil {
			var err error
			if c, err = RenderConfig(px.Config, r); err != nil {
				return fmt.Errorf("proxy %s: %w", px.Name, err)
			}
		}
		fmt.Fprintf(b, "  proxy %s (%s %s, admin %s):\n", px.Name, px.Kind, owner, c.Admin)
		y, err := c.YAML()
		if err != nil {
			return fmt.Errorf("proxy %s: %w", px.Name, err)
		}
		for line := range strings.Lines(string(y)) {
			b.WriteString("    " + line)
		}
	}
	return nil
}

// describeBackend writes a backend spec as key=value pairs.
func describeBackend(s BackendSpec) string {
	parts := []string{"latency=" + orDash(s.Latency)}
	if s.Concurrency > 0 {
		parts = append(parts, fmt.Sprintf("concurrency=%d", s.Concurrency))
	}
	if s.ErrorRate > 0 {
		parts = append(parts, fmt.Sprintf("error_rate=%v", s.ErrorRate))
	}
	if s.ResponseSize > 0 {
		parts = append(parts, fmt.Sprintf("response_size=%d", s.ResponseSize))
	}
	return strings.Join(parts, " ")
}

func orDash(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
