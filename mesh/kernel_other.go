//go:build !linux

package mesh

import (
	"fmt"
	"log/slog"
	"runtime"
)

// newKernel reports that weft drives kernel WireGuard only on Linux.
func newKernel(cfg Config, log *slog.Logger) (Device, error) {
	return nil, unsupportedError{fmt.Errorf("weft uses kernel WireGuard only on Linux, not %s", runtime.GOOS)}
}
