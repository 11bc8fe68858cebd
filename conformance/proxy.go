package conformance

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/meshbench/meshbench/peers"
	"github.com/meshbench/meshbench/proxy/config"
)

// Proxy is a proxy a check started.
type Proxy struct {
	// Config is the configuration it runs, defaults applied.
	Config *config.Config
	// Dir is its working directory (its files and log).
	Dir string
	// Metrics is its Prometheus endpoint's URL, "" when it has none.
	Metrics string
	// DrainSignal makes it stop accepting and finish what it has.
	DrainSignal syscall.Signal

	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	stop    func()
	logPath string
}

// starter starts a proxy for c instead of a process (broken targets).
type starter func(ctx context.Context, c *config.Config, dir string) (*Proxy, error)

// startTimeout bounds how long a proxy may take to become ready.
const startTimeout = 15 * time.Second

// start renders c for the target, starts it in dir and waits until it
// is ready.
func (t *Target) start(ctx context.Context, c *config.Config, traffic []string, dir, socketDir string) (*Proxy, error) {
	if t.starter != nil {
		return t.starter(ctx, c, dir)
	}
	var (
		files       []peers.File
		args        []string
		ready       string
		metrics     string
		drain       = syscall.SIGTERM
		configBytes []byte
	)
	if t.Adapter == nil {
		b, err := c.YAML()
		if err != nil {
			return nil, fmt.Errorf("writing the reference configuration: %w", err)
		}
		configBytes = b
		files = []peers.File{{Path: "meshproxy.yaml", Data: b}}
		args = []string{"--config", "meshproxy.yaml"}
		ready, metrics = "http://"+c.Admin+"/ready", "http://"+c.Admin+"/metrics"
	} else {
		user := ""
		if os.Geteuid() == 0 {
			user = "root"
		}
		// c has its defaults already (StartProxy): the adapter renders it
		// as it is.
		inst, err := t.Adapter.Render(c, peers.Options{Name: t.Name, Dir: dir, SocketDir: socketDir, User: user, Traffic: traffic})
		if err != nil {
			var na *peers.NotApplicable
			if errors.As(err, &na) {
				return nil, Unsupported("%s", na.Reason)
			}
			return nil, fmt.Errorf("rendering the %s configuration: %w", t.Name, err)
		}
		files, args, ready, metrics, drain = inst.Files, inst.Args, inst.Ready, inst.Metrics, inst.Drain
		for _, f := range files {
			configBytes = append(configBytes, f.Data...)
		}
	}
	if t.ConfigOnly {
		return nil, configOnly("the configuration rendered (%d bytes); not run: no %s binary on PATH", len(configBytes), t.Name)
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Path), f.Data, 0o644); err != nil {
			return nil, fmt.Errorf("writing %s: %w", f.Path, err)
		}
	}
	logPath := filepath.Join(dir, "proxy.log")
	log, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating the proxy log: %w", err)
	}
	cmd := exec.Command(t.Binary, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, log, log
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	// Its own process group, for signals to every worker; killed if
	// meshbench dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting %s: %w", t.Binary, err)
	}
	p := &Proxy{Config: c, Dir: dir, Metrics: metrics, DrainSignal: drain, cmd: cmd, done: make(chan struct{}), logPath: logPath}
	go func() {
		p.waitErr = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	p.stop = func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	if err := waitReady(ctx, p, ready); err != nil {
		p.stop()
		return nil, fmt.Errorf("%s: %w\n%s", t.Name, err, p.LogTail(2000))
	}
	return p, nil
}

// waitReady polls url until it answers 200, the proxy exits, or
// startTimeout passes.
func waitReady(ctx context.Context, p *Proxy, url string) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	c := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-p.done:
			return fmt.Errorf("exited before it was ready: %v", p.waitErr)
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready at %s after %v", url, startTimeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Signal sends sig to the proxy's process group.
func (p *Proxy) Signal(sig syscall.Signal) error {
	if p.cmd == nil {
		return errors.New("the proxy is not a process")
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("signalling the proxy: %w", err)
	}
	return nil
}

// Drain sends the proxy its drain signal.
func (p *Proxy) Drain() error { return p.Signal(p.DrainSignal) }

// Exited returns a channel closed once the proxy has exited.
func (p *Proxy) Exited() <-chan struct{} { return p.done }

// Pid is the proxy's process ID (its group's leader).
func (p *Proxy) Pid() int {
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Stop kills the proxy and waits for it to exit.
func (p *Proxy) Stop() {
	if p.stop != nil {
		p.stop()
	}
}

// LogTail returns the last n bytes of the proxy's log.
func (p *Proxy) LogTail(n int) string {
	if p.logPath == "" {
		return ""
	}
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
