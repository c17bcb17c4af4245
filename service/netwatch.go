package service

import (
	"context"
	"errors"
	"time"

	"github.com/weftmesh/weft/platform"
)

// netWatchMaxBackoff bounds the pause before a failed network watcher is started again.
const netWatchMaxBackoff = time.Minute

// watchNetwork runs the OS's network change watcher (platform.NetWatcher) for one tunnel
// session until ctx ends, ignoring the tunnel's own interface, and signals changed
// (coalesced) after each change of the host's addresses or routes: reportEndpoints then
// reacts as to a new public mapping at once. Where the OS has no change events it says
// so and returns; reportEndpoints' periodic checks (endpointCheck, stunEvery) stand in.
func (d *Daemon) watchNetwork(ctx context.Context, tunnel string, changed chan<- struct{}) {
	newWatcher := d.cfg.NewNetWatcher
	if newWatcher == nil {
		newWatcher = platform.NewNetWatcher
	}
	log := d.log.With("component", "netwatch")
	w := newWatcher(platform.NetWatchConfig{Ignore: tunnel, Logger: log})
	backoff := time.Second
	for {
		err := w.Watch(ctx, func() {
			log.Info("network change event: checking endpoints and the public mapping now")
			select {
			case changed <- struct{}{}:
			default: // one is pending already
			}
		})
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errors.ErrUnsupported) {
			log.Info("no network change events here; endpoints are checked periodically", "every", endpointCheck, "err", err)
			return
		}
		log.Warn("network watcher stopped; starting it again", "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, netWatchMaxBackoff)
	}
}
