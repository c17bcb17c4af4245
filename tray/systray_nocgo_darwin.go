//go:build darwin && !cgo

package tray

import "errors"

// RunSystray cannot show a menu bar item here: fyne.io/systray reaches Cocoa through cgo.
func RunSystray(func(view View, quit func()) *App) error {
	return errors.New("this weft-tray was built without cgo, and the macOS menu bar needs it: build it on a Mac with CGO_ENABLED=1")
}

// Stop does nothing: nothing runs.
func Stop() {}
