// Command soma is the Soma homeserver: it loads the config, wires storage,
// actors and the HTTP API together, and serves until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/soma-chat/soma/config"
)

func main() {
	configPath := flag.String("config", "", "path to the YAML config (default: built-in defaults, SOMA_* env overrides)")
	flag.Parse()
	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "soma: config: %v\n", err)
		os.Exit(2)
	}
	log := newLogger(cfg.Log, os.Stderr)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	node, err := startNode(ctx, cfg, log)
	if err != nil {
		log.Error().Err(err).Msg("start-up failed")
		os.Exit(1)
	}
	failed := false
	select {
	case <-ctx.Done():
		log.Info().Msg("shutting down")
	case err := <-node.failed:
		if !errors.Is(err, context.Canceled) {
			log.Error().Err(err).Msg("listener failed")
			failed = true // a supervisor (systemd Restart=on-failure) restarts us
		}
	}
	node.shutdown()
	if failed {
		os.Exit(1)
	}
}
