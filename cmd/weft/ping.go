package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/weftmesh/weft/wire"
)

const pingUsage = "usage: weft ping PEER [-c N]"

func cmdPing(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "ping")
	count := fs.Int("c", 3, "number of echo requests")
	pos, err := parseArgs(fs, args, pingUsage)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		return usagef(pingUsage, "which peer? give its name, FQDN or mesh IP")
	case len(pos) > 1:
		return usagef(pingUsage, "unexpected argument %q", pos[1])
	case *count < 1 || *count > 100:
		return usagef(pingUsage, "-c must be between 1 and 100, not %d", *count)
	}
	// Each echo waits at most a second for its reply.
	ctx, cancel := context.WithTimeout(ctx, time.Duration(*count)*2*time.Second+15*time.Second)
	defer cancel()
	res, err := e.client().Ping(ctx, wire.PingRequest{Peer: pos[0], Count: *count})
	if err != nil {
		return err
	}
	answered := 0
	for _, r := range res.Replies {
		if r.Error != "" {
			fmt.Fprintf(e.stdout, "no reply from %s (%s), seq %d: %s\n", res.Peer, res.Address, r.Seq, r.Error)
			continue
		}
		answered++
		fmt.Fprintf(e.stdout, "reply from %s (%s) via %s: time=%s ms\n", res.Peer, res.Address, r.Path,
			strconv.FormatFloat(float64(r.RTT)/float64(time.Millisecond), 'f', 1, 64))
	}
	if answered == 0 {
		return fmt.Errorf("no reply from %s (%s)", res.Peer, res.Address)
	}
	return nil
}
