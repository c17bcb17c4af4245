//go:build !linux && !darwin && !windows

package platform

import (
	"fmt"
	"log/slog"
	"runtime"
)

func newFirewall(log *slog.Logger) (Firewall, error) {
	return nil, fmt.Errorf("firewall not supported on %s", runtime.GOOS)
}
