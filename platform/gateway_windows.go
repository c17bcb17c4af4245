package platform

import (
	"errors"
	"log/slog"
)

// Forwarding with NAT on Windows needs packet rewriting in WFP callouts (a kernel driver)
// or WinNAT, which does not translate per flow the way a gateway must; not done yet.
func newGateway(log *slog.Logger) (Gateway, error) {
	return nil, errors.New("gateway mode is not supported on Windows yet")
}
