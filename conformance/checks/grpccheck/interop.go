package grpccheck

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/meshbench/meshbench/conformance"
)

// ChildJob is the value of conformance.ChildEnv that makes Child run
// interop cases.
const ChildJob = "grpc-interop"

// The environment of an interop child: the address it dials, the
// :authority it sends and the cases it runs (comma-separated, in order).
const (
	EnvInteropAddr      = "MESHBENCH_GRPC_INTEROP_ADDR"
	EnvInteropAuthority = "MESHBENCH_GRPC_INTEROP_AUTHORITY"
	EnvInteropCases     = "MESHBENCH_GRPC_INTEROP_CASES"
)

const (
	// caseTimeout bounds one interop case in the child.
	caseTimeout = 5 * time.Second
	// childTimeout bounds one child process.
	childTimeout = 30 * time.Second
	// interopBudget is how long the check starts new children for; cases
	// left then are reported as not run.
	interopBudget = 50 * time.Second
)

// interopCase is one of grpc-go's interop client cases.
type interopCase struct {
	name string
	run  func(ctx context.Context, conn *grpc.ClientConn, tc testgrpc.TestServiceClient)
}

// interopCases are the cases that need nothing but a plain TestService
// (no credentials, no ORCA, no soak), in the order they run.
var interopCases = []interopCase{
	{"empty_unary", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoEmptyUnaryCall(ctx, tc)
	}},
	{"large_unary", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoLargeUnaryCall(ctx, tc)
	}},
	{"client_streaming", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoClientStreaming(ctx, tc)
	}},
	{"server_streaming", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoServerStreaming(ctx, tc)
	}},
	{"ping_pong", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoPingPong(ctx, tc)
	}},
	{"empty_stream", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoEmptyStream(ctx, tc)
	}},
	{"timeout_on_sleeping_server", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoTimeoutOnSleepingServer(ctx, tc)
	}},
	{"cancel_after_begin", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoCancelAfterBegin(ctx, tc)
	}},
	{"cancel_after_first_response", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoCancelAfterFirstResponse(ctx, tc)
	}},
	{"status_code_and_message", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoStatusCodeAndMessage(ctx, tc)
	}},
	{"special_status_message", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoSpecialStatusMessage(ctx, tc)
	}},
	{"custom_metadata", func(ctx context.Context, _ *grpc.ClientConn, tc testgrpc.TestServiceClient) {
		interop.DoCustomMetadata(ctx, tc)
	}},
	{"unimplemented_method", func(ctx context.Context, conn *grpc.ClientConn, _ testgrpc.TestServiceClient) {
		interop.DoUnimplementedMethod(ctx, conn)
	}},
	{"unimplemented_service", func(ctx context.Context, conn *grpc.ClientConn, _ testgrpc.TestServiceClient) {
		interop.DoUnimplementedService(ctx, testgrpc.NewUnimplementedServiceClient(conn))
	}},
}

func caseList() string {
	names := make([]string, len(interopCases))
	for i, c := range interopCases {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// childEvent is one line a child writes on its standard output: a case
// started, or a case passed.
type childEvent struct {
	Case  string  `json:"case"`
	Event string  `json:"event"` // "start" or "pass"
	Ms    float64 `json:"ms,omitempty"`
}

// Child runs the interop child job when the process was started as one
// (conformance.ChildEnv set to ChildJob): it dials EnvInteropAddr and runs
// the cases EnvInteropCases names in order, writing a JSON line on its
// standard output as each starts and as each passes. A failing case ends
// the process (grpc-go's interop functions exit with status 1); Child
// returns 0 when every case passed and 2 when it could not run them. Call
// it first thing in main when conformance.ChildEnv is set, and exit with
// its result.
func Child() int {
	if job := os.Getenv(conformance.ChildEnv); job != ChildJob {
		fmt.Fprintf(os.Stderr, "grpccheck: unknown conformance child job %q (%s)\n", job, conformance.ChildEnv)
		return 2
	}
	addr, authority := os.Getenv(EnvInteropAddr), os.Getenv(EnvInteropAuthority)
	if addr == "" {
		fmt.Fprintf(os.Stderr, "grpccheck: %s is not set\n", EnvInteropAddr)
		return 2
	}
	byName := map[string]interopCase{}
	for _, c := range interopCases {
		byName[c.name] = c
	}
	var run []interopCase
	for _, n := range strings.Split(os.Getenv(EnvInteropCases), ",") {
		c, ok := byName[n]
		if !ok {
			fmt.Fprintf(os.Stderr, "grpccheck: unknown interop case %q\n", n)
			return 2
		}
		run = append(run, c)
	}
	conn, err := Dial(addr, authority)
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpccheck:", err)
		return 2
	}
	defer conn.Close()
	tc := testgrpc.NewTestServiceClient(conn)
	out := json.NewEncoder(os.Stdout)
	for _, c := range run {
		if err := out.Encode(childEvent{Case: c.name, Event: "start"}); err != nil {
			return 2
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
		c.run(ctx, conn, tc)
		cancel()
		if err := out.Encode(childEvent{Case: c.name, Event: "pass", Ms: float64(time.Since(start).Microseconds()) / 1e3}); err != nil {
			return 2
		}
	}
	return 0
}

// childResult is what one child run showed: the cases that passed, and
// the case that failed (with why) when it ended early.
type childResult struct {
	passed []string
	failed string
	why    string
}

// runChild runs cases in one child process against addr.
func runChild(e *conformance.Env, addr string, cases []string) (childResult, error) {
	ctx, cancel := context.WithTimeout(e.Context(), childTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.Tools().Self)
	cmd.Env = append(os.Environ(), conformance.ChildEnv+"="+ChildJob, EnvInteropAddr+"="+addr,
		EnvInteropAuthority+"="+Authority, EnvInteropCases+"="+strings.Join(cases, ","))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 2 * time.Second
	runErr := cmd.Run()
	var res childResult
	started := ""
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var ev childEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return res, fmt.Errorf("interop child: a line that is not an event: %q", sc.Text())
		}
		switch ev.Event {
		case "start":
			started = ev.Case
		case "pass":
			res.passed = append(res.passed, ev.Case)
			started = ""
		}
	}
	if runErr == nil {
		if len(res.passed) != len(cases) {
			return res, fmt.Errorf("interop child exited 0 after passing %d of %d cases", len(res.passed), len(cases))
		}
		return res, nil
	}
	if started == "" {
		// It failed before starting a case, or between two: a harness
		// problem, not the proxy's.
		return res, fmt.Errorf("interop child (%s): %v: %s", e.Tools().Self, runErr, fatalText(stderr.String()))
	}
	res.failed = started
	res.why = fatalText(stderr.String())
	if ctx.Err() != nil {
		res.why = fmt.Sprintf("killed after %v", childTimeout)
	} else if res.why == "" {
		res.why = runErr.Error()
	}
	return res, nil
}

// lastLine returns the last non-empty line of s, trimmed.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// fatalText returns what a child's standard error says of its failure:
// from the last FATAL record on (whose message may span lines), on one
// line, at most 400 bytes.
func fatalText(s string) string {
	if i := strings.LastIndex(s, "FATAL: "); i >= 0 {
		s = s[i:]
	} else {
		s = lastLine(s)
	}
	s = strings.Join(strings.Fields(pointerRE.ReplaceAllString(s, "stream")), " ")
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}

// pointerRE matches the Go value a failing case prints for its stream.
var pointerRE = regexp.MustCompile(`&\{0x[0-9a-f]+\}`)

// racyCase is the interop case whose outcome is a race on a busy machine:
// its 1 ms deadline expires while the call is in flight, and a proxy that
// answers the server's reset of the stream with an error status (nginx:
// 502) can beat the client's own deadline timer, which fires late when the
// machine is loaded. It is run once more when it fails; a second failure
// counts. Every other case counts at its first failure.
const racyCase = "timeout_on_sleeping_server"

func interopCheck(e *conformance.Env) error {
	if e.Tools().Self == "" {
		return conformance.Skipped("no program to run the gRPC interop cases in as a child (Tools.Self is empty)")
	}
	be, listen, _, err := setup(e)
	if err != nil {
		return err
	}
	var left []string
	for _, c := range interopCases {
		left = append(left, c.name)
	}
	total := len(left)
	passed, retries := 0, 0
	var failures []string
	deadline := time.Now().Add(interopBudget)
	for len(left) > 0 {
		if time.Now().After(deadline) {
			failures = append(failures, fmt.Sprintf("%d cases not run within %v (%s)", len(left), interopBudget, strings.Join(left, ", ")))
			break
		}
		res, err := runChild(e, listen, left)
		if err != nil {
			return err
		}
		passed += len(res.passed)
		left = left[len(res.passed):]
		if res.failed == "" {
			break
		}
		if len(left) == 0 || res.failed != left[0] {
			return fmt.Errorf("interop child: case %s failed out of order (next was %v)", res.failed, left)
		}
		if res.failed == racyCase && retries == 0 {
			retries++
			e.Log().Info("interop case failed once; running it again", "case", res.failed, "why", res.why)
			continue
		}
		failures = append(failures, fmt.Sprintf("%s: %s", res.failed, res.why))
		left = left[1:]
	}
	e.Figure("cases", float64(total), "")
	e.Figure("passed", float64(passed), "")
	e.Figure("retried", float64(retries), "")
	if len(failures) > 0 {
		return fmt.Errorf("%d of %d interop cases passed; failed: %s", passed, total, strings.Join(failures, "; "))
	}
	// The child knows only the proxy's address; every case but two makes
	// calls the backend must see (timeout_on_sleeping_server and
	// cancel_after_begin may end before their call leaves the client).
	if n, least := be.Count(), total-2; n < least {
		return fmt.Errorf("the interop cases passed, but the backend saw %d calls, want at least %d: the calls did not go through the proxy to it", n, least)
	}
	return nil
}
