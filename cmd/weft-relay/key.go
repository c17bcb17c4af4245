package main

import (
	"fmt"
	"os"

	"github.com/weftmesh/weft/relay"
	"github.com/weftmesh/weft/wire"
)

func cmdKey(args []string, e env) error {
	fs := newFlags("key")
	data := fs.String("data", "", "")
	if err := parse(fs, args); err != nil {
		return err
	}
	k, err := loadKey(*data)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, k.Public())
	return nil
}

// loadKey creates the data directory if needed and loads (or makes) the relay's key.
func loadKey(dir string) (wire.Key, error) {
	if dir == "" {
		return wire.Key{}, usagef("--data DIR is required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return wire.Key{}, fmt.Errorf("data directory: %w", err)
	}
	return relay.LoadOrCreateKey(dir)
}
