package main

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/weftmesh/weft/broker"
)

// listFlag collects comma-separated values from a repeatable flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func cmdServe(args []string, data string, e env) error {
	fs := newFlags("weft-broker serve")
	cfg := broker.Config{}
	fs.StringVar(&cfg.DataDir, "data", data, "")
	fs.StringVar(&cfg.Listen, "listen", ":8443", "")
	fs.StringVar(&cfg.Domain, "domain", broker.DefaultDomain, "")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "")
	fs.StringVar(&cfg.DNSListen, "dns", "", "")
	var dnsAddrs, publicAddrs, stunListen listFlag
	fs.Var(&dnsAddrs, "dns-addr", "")
	fs.Var(&publicAddrs, "public-addr", "")
	fs.Var(&stunListen, "stun", "")
	fs.StringVar(&cfg.RelayUDP, "relay-udp", "", "")
	fs.StringVar(&cfg.RelayTLS, "relay-tls", "", "")
	var sans listFlag
	fs.Var(&sans, "tls-san", "")
	debug := fs.Bool("debug", false, "")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("serve takes no arguments, got %q", strings.Join(pos, " "))
	}
	if cfg.DataDir == "" {
		return usagef("--data DIR is required")
	}
	cfg.TLSSANs = sans
	for _, a := range dnsAddrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return usagef("--dns-addr %q: not an IP address", a)
		}
		cfg.DNSAddrs = append(cfg.DNSAddrs, ip)
	}
	for _, a := range publicAddrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return usagef("--public-addr %q: not an IP address", a)
		}
		cfg.PublicAddrs = append(cfg.PublicAddrs, ip)
	}
	cfg.STUNListen = stunListen
	if cfg.RelayTLS != "" && cfg.RelayUDP == "" {
		return usagef("--relay-tls needs --relay-udp too")
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := broker.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.Run(ctx); err != nil {
		return err
	}
	cfg.Logger.Info("broker stopped")
	return nil
}
