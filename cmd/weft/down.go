package main

import (
	"context"
	"fmt"
	"time"
)

const downUsage = "usage: weft down"

func cmdDown(ctx context.Context, e *env, args []string) error {
	if err := noArgs(newFlags(e, "down"), args, downUsage); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := e.client().Down(ctx); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "weft is down; weft up brings it back")
	return nil
}
