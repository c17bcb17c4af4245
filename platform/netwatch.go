package platform

import (
	"context"
	"log/slog"
	"time"
)

// Network change detection: how weftd notices at once that the host moved to another
// network (new addresses, a new default route), rather than at its next periodic check.

// NetWatcher reports changes to the host's network.
type NetWatcher interface {
	// Watch calls changed after each burst of changes to the host's addresses or default
	// routes (outside NetWatchConfig.Ignore), once per burst and only when the burst left
	// them different from before, until ctx ends; then it returns nil. Calls come from
	// Watch's goroutine, one at a time. Where the OS gives no change events Watch returns
	// at once an error wrapping errors.ErrUnsupported; callers then rely on polling.
	Watch(ctx context.Context, changed func()) error
}

// Defaults for NetWatchConfig's zero values.
const (
	// DefaultNetQuiet: a burst ends once this long passed without another change. Moving
	// networks brings a volley of events (address gone, address added, routes) within
	// milliseconds; reacting to the first would measure a half-configured network.
	DefaultNetQuiet = 500 * time.Millisecond
	// DefaultNetMaxDelay bounds how long a burst that never goes quiet delays the call.
	DefaultNetMaxDelay = 3 * time.Second
)

// NetWatchConfig configures NewNetWatcher.
type NetWatchConfig struct {
	// Ignore is an interface whose changes do not count: weft's own tunnel, whose
	// address and routes weftd sets itself.
	Ignore   string
	Quiet    time.Duration // 0 means DefaultNetQuiet
	MaxDelay time.Duration // 0 means DefaultNetMaxDelay
	Logger   *slog.Logger
}

// NewNetWatcher returns the OS's network change watcher.
func NewNetWatcher(cfg NetWatchConfig) NetWatcher {
	if cfg.Quiet <= 0 {
		cfg.Quiet = DefaultNetQuiet
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = DefaultNetMaxDelay
	}
	if cfg.MaxDelay < cfg.Quiet {
		cfg.MaxDelay = cfg.Quiet
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return newNetWatcher(cfg)
}

// burst coalesces events into one reaction, without I/O: it is due once quiet passed
// since the last event, or maxDelay since the first, whichever comes first.
type burst struct {
	quiet, maxDelay time.Duration
	pending         bool
	first, last     time.Time
}

// add records an event at now.
func (b *burst) add(now time.Time) {
	if !b.pending {
		b.pending, b.first = true, now
	}
	b.last = now
}

// due reports whether the pending burst is over at now (and forgets it if so), or else
// how long to wait before asking again; wait is 0 when nothing is pending.
func (b *burst) due(now time.Time) (fire bool, wait time.Duration) {
	if !b.pending {
		return false, 0
	}
	at := b.last.Add(b.quiet)
	if limit := b.first.Add(b.maxDelay); limit.Before(at) {
		at = limit
	}
	if !now.Before(at) {
		b.pending = false
		return true, 0
	}
	return false, at.Sub(now)
}
