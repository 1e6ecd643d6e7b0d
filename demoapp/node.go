package demoapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/fibercut/fibercut/lab"
)

// NodeConfig is what a node needs to know about itself.
type NodeConfig struct {
	Lab     string
	DC      string
	City    string
	Version string
	// Listen is the address to serve on; ":7100" (every interface) by default.
	Listen string
}

// NodeConfigFromEnv reads the node's configuration from the environment the
// lab gives its containers.
func NodeConfigFromEnv() (NodeConfig, error) {
	cfg := NodeConfig{
		Lab:    os.Getenv(lab.EnvLab),
		DC:     os.Getenv(lab.EnvDC),
		City:   os.Getenv(lab.EnvCity),
		Listen: ":" + strconv.Itoa(lab.NodePort),
	}
	var missing []string
	for name, v := range map[string]string{lab.EnvLab: cfg.Lab, lab.EnvDC: cfg.DC, lab.EnvCity: cfg.City} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return cfg, fmt.Errorf("demoapp: node environment lacks %v; `fibercut node` runs inside a lab container started by `fibercut lab up`", missing)
	}
	return cfg, nil
}

// RunNode serves the node until ctx is done.
func RunNode(ctx context.Context, cfg NodeConfig) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+lab.HealthPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(lab.Health{Lab: cfg.Lab, DC: cfg.DC, City: cfg.City, Version: cfg.Version})
	})
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("demoapp: node listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	slog.Info("node serving", "lab", cfg.Lab, "dc", cfg.DC, "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("demoapp: node: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("demoapp: node shutdown: %w", err)
	}
	return nil
}
