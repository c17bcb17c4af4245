//go:build !darwin && !windows

package tray

import (
	"fyne.io/systray"

	"github.com/weftmesh/weft/assets"
)

// showIcon sets the tray icon; StatusNotifierItem hosts scale the 32 px image.
func showIcon(state string) { systray.SetIcon(assets.PNG(state, 32)) }

// setAppTitle names the item for the StatusNotifierItem host.
func setAppTitle() { systray.SetTitle("weft") }
