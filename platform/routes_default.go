//go:build !linux && !darwin && !windows

package platform

import (
	"fmt"
	"log/slog"
	"runtime"
)

func newRouter(log *slog.Logger) (Router, error) {
	return nil, fmt.Errorf("routes through the tunnel not supported on %s", runtime.GOOS)
}
