//go:build !linux

package platform

import (
	"context"
	"errors"
	"fmt"
	"runtime"
)

// Other systems have change notifications too (a routing socket on the BSDs and macOS,
// NotifyIpInterfaceChange on Windows); until they are wired up, weftd's periodic check
// of the host's addresses and public mapping stands in.
type noNetWatcher struct{}

func newNetWatcher(NetWatchConfig) NetWatcher { return noNetWatcher{} }

func (noNetWatcher) Watch(context.Context, func()) error {
	return fmt.Errorf("network change events are not implemented on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
