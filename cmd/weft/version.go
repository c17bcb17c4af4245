package main

import (
	"fmt"

	"github.com/weftmesh/weft/wire"
)

const versionUsage = "usage: weft version"

func cmdVersion(e *env, args []string) error {
	if err := noArgs(newFlags(e, "version"), args, versionUsage); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "weft %s (local API v%d, broker protocol v%d)\n", version, wire.LocalAPIVersion, wire.ProtocolVersion)
	return nil
}
