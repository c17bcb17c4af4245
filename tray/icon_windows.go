package tray

import (
	"fyne.io/systray"

	"github.com/weftmesh/weft/assets"
)

// showIcon sets the notification-area icon; Windows picks the size it needs from the ICO.
func showIcon(state string) { systray.SetIcon(assets.ICO(state)) }

func setAppTitle() {}
