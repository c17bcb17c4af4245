//go:build !linux && !darwin && !windows

package platform

import (
	"fmt"
	"log/slog"
	"runtime"
)

func newGateway(log *slog.Logger) (Gateway, error) {
	return nil, fmt.Errorf("gateway mode not supported on %s", runtime.GOOS)
}
