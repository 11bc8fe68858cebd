// Command meshproxy is meshbench's reference service-mesh proxy.
//
//	meshproxy --config proxy.yaml [--validate] [--log-level info]
//
// With --validate it checks the file and exits 0, or prints every problem
// (file, line, field) and exits 2; either way it prints a warning for what
// a valid configuration does that is seldom meant (an admin server beyond
// loopback). Otherwise it serves until SIGTERM or
// SIGINT, then drains: it stops accepting, lets requests in flight finish
// within the configuration's drain_timeout, and exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/meshbench/meshbench/proxy"
	"github.com/meshbench/meshbench/proxy/config"
)

func main() {
	adaptiveStacks()
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("meshproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgFile := fs.String("config", "", "proxy configuration `file` (YAML)")
	validate := fs.Bool("validate", false, "check the configuration and exit")
	drain := fs.Duration("drain-timeout", 0, "override the configuration's drain_timeout")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: meshproxy --config FILE [--validate] [--drain-timeout D] [--log-level L]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *cfgFile == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "meshproxy: --log-level: %v\n", err)
		return 2
	}
	cfg, err := config.Load(*cfgFile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stderr, "%s: warning: %s\n", *cfgFile, w)
	}
	if *validate {
		fmt.Fprintf(stdout, "%s: ok (%d listeners, %d clusters)\n", *cfgFile, len(cfg.Listeners), len(cfg.Clusters))
		return 0
	}
	if *drain > 0 {
		cfg.DrainTimeout = config.Duration(*drain)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	srv, err := proxy.New(cfg, log)
	if err != nil {
		log.Error("building proxy", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := srv.Run(ctx); err != nil {
		if ctx.Err() == nil {
			log.Error("proxy failed", "err", err)
			return 1
		}
		log.Warn("drain incomplete", "err", err)
	}
	log.Info("stopped")
	return 0
}
