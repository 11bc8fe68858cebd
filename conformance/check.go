package conformance

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Status is how a check ended.
type Status string

// The statuses of a check. Only StatusPass is a pass.
const (
	StatusPass        Status = "pass"
	StatusFail        Status = "fail"
	StatusUnsupported Status = "unsupported"
	StatusSkipped     Status = "skipped"
	StatusConfigOnly  Status = "config-only"
)

// Profiles, in the order reports list them.
const (
	ProfileCoreHTTP      = "core-http"
	ProfileGRPC          = "grpc"
	ProfileMultiprotocol = "multiprotocol"
	ProfileBalancing     = "balancing"
	ProfileResilience    = "resilience"
	ProfileSecurity      = "security"
	ProfileObservability = "observability"
	ProfileLifecycle     = "lifecycle"
	ProfileH2            = "h2"
)

// Profiles returns every profile's name in report order.
func Profiles() []string {
	return []string{ProfileCoreHTTP, ProfileGRPC, ProfileMultiprotocol, ProfileBalancing, ProfileResilience,
		ProfileSecurity, ProfileObservability, ProfileLifecycle, ProfileH2}
}

// Check is one named conformance check.
type Check struct {
	// ID is stable across releases: "<profile>/<name>".
	ID string
	// Title is a one-line description for the matrix.
	Title string
	// Asserts says what the check asserts and why a mesh needs it, for
	// docs/conformance.md; statistical checks state their test and
	// false-fail rate here.
	Asserts string
	// Needs are the capabilities the check needs, by the names of the
	// peers adapters' Capabilities (a balancer policy, "mtls", "outlier",
	// "retry", ...): a target that lacks one ends the check unsupported
	// with the adapter's reason, before anything starts.
	Needs []string
	// Run runs the check. It returns nil for a pass, an error made by
	// Unsupported or Skipped for those, and any other error for a fail.
	Run func(e *Env) error
}

// Profile is the profile part of the check's ID.
func (c Check) Profile() string {
	p, _, _ := strings.Cut(c.ID, "/")
	return p
}

// Validate checks a list of checks: IDs well formed, in a known profile,
// unique, and every check runnable.
func Validate(checks []Check) error {
	seen := map[string]bool{}
	for _, c := range checks {
		p, name, ok := strings.Cut(c.ID, "/")
		switch {
		case !ok || name == "" || !idRE.MatchString(name):
			return fmt.Errorf("check %q: an ID is <profile>/<name>, name in [a-z0-9-]", c.ID)
		case !slices.Contains(Profiles(), p):
			return fmt.Errorf("check %q: unknown profile %q", c.ID, p)
		case seen[c.ID]:
			return fmt.Errorf("check %q is listed twice", c.ID)
		case c.Run == nil || c.Title == "" || c.Asserts == "":
			return fmt.Errorf("check %q needs Run, Title and Asserts", c.ID)
		}
		seen[c.ID] = true
	}
	return nil
}

var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// Select returns the checks of profile (all when "") whose ID matches re
// (all when nil), in their order.
func Select(checks []Check, profile string, re *regexp.Regexp) []Check {
	var out []Check
	for _, c := range checks {
		if profile != "" && c.Profile() != profile {
			continue
		}
		if re != nil && !re.MatchString(c.ID) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// statusError is an error that ends a check with a status other than fail.
type statusError struct {
	status Status
	reason string
}

func (e *statusError) Error() string { return string(e.status) + ": " + e.reason }

// Unsupported ends a check as unsupported: the proxy lacks what it needs.
func Unsupported(format string, args ...any) error {
	return &statusError{status: StatusUnsupported, reason: fmt.Sprintf(format, args...)}
}

// Skipped ends a check as skipped: the harness lacks a tool it needs (the
// reason names it and the package that installs it).
func Skipped(format string, args ...any) error {
	return &statusError{status: StatusSkipped, reason: fmt.Sprintf(format, args...)}
}

// configOnly ends a check on a config-only target once its
// configuration rendered.
func configOnly(format string, args ...any) error {
	return &statusError{status: StatusConfigOnly, reason: fmt.Sprintf(format, args...)}
}

// Classify turns what a check's Run returned into its status and reason.
func Classify(err error) (Status, string) {
	if err == nil {
		return StatusPass, ""
	}
	var se *statusError
	if errors.As(err, &se) {
		return se.status, se.reason
	}
	return StatusFail, err.Error()
}
