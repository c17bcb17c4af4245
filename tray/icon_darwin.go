//go:build darwin && cgo

package tray

import (
	"fyne.io/systray"

	"github.com/weftmesh/weft/assets"
)

// showIcon sets a template icon, which macOS tints for light and dark menu bars; the
// states differ by shape. The 32 px image is drawn at 16 pt, sharp on Retina screens.
func showIcon(state string) {
	systray.SetTemplateIcon(assets.Template(state, 32), assets.PNG(state, 32))
}

// setAppTitle leaves the menu bar title empty: on macOS it would show beside the icon.
func setAppTitle() {}
