package main

import (
	"context"
	"fmt"
	"time"
)

const logoutUsage = "usage: weft logout"

func cmdLogout(ctx context.Context, e *env, args []string) error {
	if err := noArgs(newFlags(e, "logout"), args, logoutUsage); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := e.client().Logout(ctx); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "logged out: this device left the mesh and its identity is forgotten")
	return nil
}
