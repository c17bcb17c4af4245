package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weftmesh/weft/relay"
)

// sizeFlag is a byte count with an optional K, M or G suffix.
type sizeFlag int64

func (s *sizeFlag) String() string { return strconv.FormatInt(int64(*s), 10) }

func (s *sizeFlag) Set(v string) error {
	mult := int64(1)
	switch {
	case strings.HasSuffix(v, "K"):
		mult, v = 1e3, strings.TrimSuffix(v, "K")
	case strings.HasSuffix(v, "M"):
		mult, v = 1e6, strings.TrimSuffix(v, "M")
	case strings.HasSuffix(v, "G"):
		mult, v = 1e9, strings.TrimSuffix(v, "G")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return errors.New("want a positive number of bytes, optionally with K, M or G")
	}
	*s = sizeFlag(n * mult)
	return nil
}

func cmdServe(args []string, e env) error {
	fs := newFlags("serve")
	data := fs.String("data", "", "")
	listenUDP := fs.String("listen-udp", ":443", "")
	listenTLS := fs.String("listen-tls", ":443", "")
	certFile := fs.String("tls-cert", "", "")
	keyFile := fs.String("tls-key", "", "")
	var rate, burst sizeFlag
	fs.Var(&rate, "rate", "")
	fs.Var(&burst, "burst", "")
	maxClients := fs.Int("max-clients", 0, "")
	lease := fs.Duration("lease", 0, "")
	metrics := fs.String("metrics", "", "")
	statsInterval := fs.Duration("stats-interval", 0, "")
	debug := fs.Bool("debug", false, "")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *listenUDP == "off" && *listenTLS == "off" {
		return usagef("--listen-udp and --listen-tls cannot both be off")
	}
	if *maxClients < 0 || *lease < 0 || *statsInterval < 0 {
		return usagef("--max-clients, --lease and --stats-interval must not be negative")
	}
	if (*certFile == "") != (*keyFile == "") {
		return usagef("give both --tls-cert and --tls-key, or neither")
	}
	key, err := loadKey(*data)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	srv, err := relay.New(relay.Config{
		PrivateKey: key, Rate: int64(rate), Burst: int64(burst), MaxClients: *maxClients,
		Lease: *lease, StatsInterval: *statsInterval, Logger: log,
	})
	if err != nil {
		return err
	}

	// Open every socket before serving anything, so a bad address changes nothing.
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	var serve []func() error
	fmt.Fprintf(e.stdout, "public key: %s\n", srv.PublicKey())
	if *listenUDP != "off" {
		uc, err := relay.ListenUDP(ctx, *listenUDP)
		if err != nil {
			return err
		}
		closers = append(closers, func() { uc.Close() })
		serve = append(serve, func() error { return srv.ServeUDP(ctx, uc) })
		fmt.Fprintf(e.stdout, "udp: %s\n", uc.LocalAddr())
	}
	if *listenTLS != "off" {
		cert, err := relay.LoadOrCreateCert(*data, *certFile, *keyFile)
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", *listenTLS)
		if err != nil {
			return fmt.Errorf("listen %s: %w", *listenTLS, err)
		}
		closers = append(closers, func() { ln.Close() })
		serve = append(serve, func() error { return srv.ServeTLS(ctx, ln, cert) })
		fmt.Fprintf(e.stdout, "tls: %s\n", ln.Addr())
	}
	if *metrics != "" {
		ln, err := net.Listen("tcp", *metrics)
		if err != nil {
			return fmt.Errorf("listen %s: %w", *metrics, err)
		}
		closers = append(closers, func() { ln.Close() })
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", srv.MetricsHandler())
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		serve = append(serve, func() error {
			stop := context.AfterFunc(ctx, func() { hs.Close() })
			defer stop()
			if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics: %w", err)
			}
			return nil
		})
		fmt.Fprintf(e.stdout, "metrics: http://%s/metrics\n", ln.Addr())
	}
	serve = append(serve, func() error { return srv.Run(ctx) })

	// The first to fail stops the rest.
	var wg sync.WaitGroup
	errs := make(chan error, len(serve))
	for _, f := range serve {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	log.Info("relay stopped")
	return nil
}
