//go:build !darwin || cgo

package tray

import (
	"context"
	"sync"

	"fyne.io/systray"
)

// RunSystray shows the tray with fyne.io/systray and runs the app until the user quits
// or Stop is called; it must run on the main goroutine (macOS requires it). newApp builds
// the app given the view and the function that quits the tray.
func RunSystray(newApp func(view View, quit func()) *App) error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	systray.Run(func() {
		setAppTitle()
		v := &systrayView{byID: map[string]*menuNode{}}
		app := newApp(v, systray.Quit)
		v.click = app.Click
		go func() {
			defer close(done)
			app.Run(ctx)
		}()
	}, func() {
		cancel()
		<-done
	})
	return nil
}

// Stop ends a running RunSystray, as Quit in the menu does.
func Stop() { systray.Quit() }

// systrayView shows Menu's items with systray, updating items in place where the menu's
// shape is unchanged. systray cannot remove separators, so a change of shape at the top
// level rebuilds the whole menu; submenus (without separators) rebuild only their items.
type systrayView struct {
	click func(Intent)

	mu    sync.Mutex // guards the fields below; held while talking to systray
	root  []*menuNode
	byID  map[string]*menuNode
	icon  string
	tip   string
	built bool
}

// menuNode is one shown item.
type menuNode struct {
	item  Item // as last shown
	mi    *systray.MenuItem
	kids  []*menuNode
	check bool // created as a checkbox; cannot change later
}

func (v *systrayView) Show(items []Item, icon, tooltip string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if icon != v.icon {
		showIcon(icon)
		v.icon = icon
	}
	if tooltip != v.tip {
		systray.SetTooltip(tooltip)
		v.tip = tooltip
	}
	if !v.built || !sameShape(v.root, items) {
		if v.built {
			systray.ResetMenu()
		}
		v.byID = map[string]*menuNode{}
		v.root = v.build(nil, items)
		v.built = true
		return
	}
	v.root = v.update(nil, v.root, items)
}

// sameShape reports whether nodes show items' IDs, separators and checkboxes in order.
func sameShape(nodes []*menuNode, items []Item) bool {
	if len(nodes) != len(items) {
		return false
	}
	for i, n := range nodes {
		it := items[i]
		if n.item.ID != it.ID || n.item.Separator != it.Separator || n.check != (it.Check != NoCheck) {
			return false
		}
	}
	return true
}

// build adds items under parent (nil: the top level).
func (v *systrayView) build(parent *systray.MenuItem, items []Item) []*menuNode {
	nodes := make([]*menuNode, 0, len(items))
	for _, it := range items {
		n := &menuNode{item: it, check: it.Check != NoCheck}
		switch {
		case it.Separator && parent == nil:
			systray.AddSeparator()
		case it.Separator:
			parent.AddSeparator()
		case parent == nil && n.check:
			n.mi = systray.AddMenuItemCheckbox(it.Label, it.Tooltip, it.Check == Checked)
		case parent == nil:
			n.mi = systray.AddMenuItem(it.Label, it.Tooltip)
		case n.check:
			n.mi = parent.AddSubMenuItemCheckbox(it.Label, it.Tooltip, it.Check == Checked)
		default:
			n.mi = parent.AddSubMenuItem(it.Label, it.Tooltip)
		}
		if n.mi != nil {
			applyState(n.mi, Item{}, it, true)
			n.kids = v.build(n.mi, it.Children)
			go v.listen(it.ID, n.mi.ClickedCh)
		}
		v.byID[it.ID] = n
		nodes = append(nodes, n)
	}
	return nodes
}

// update brings nodes, which have items' shape at this level, up to date.
func (v *systrayView) update(parent *systray.MenuItem, nodes []*menuNode, items []Item) []*menuNode {
	for i, n := range nodes {
		it := items[i]
		if n.mi != nil {
			applyState(n.mi, n.item, it, false)
			if sameShape(n.kids, it.Children) && !hasSeparator(it.Children) {
				n.kids = v.update(n.mi, n.kids, it.Children)
			} else {
				for _, k := range n.kids {
					v.forget(k)
					k.mi.Remove()
				}
				n.kids = v.build(n.mi, it.Children)
			}
		}
		n.item = it
		v.byID[it.ID] = n
	}
	return nodes
}

func hasSeparator(items []Item) bool {
	for _, it := range items {
		if it.Separator {
			return true
		}
	}
	return false
}

func (v *systrayView) forget(n *menuNode) {
	delete(v.byID, n.item.ID)
	for _, k := range n.kids {
		v.forget(k)
	}
}

// applyState makes mi show it, touching only what changed since was.
func applyState(mi *systray.MenuItem, was, it Item, fresh bool) {
	if fresh || was.Label != it.Label {
		mi.SetTitle(it.Label)
	}
	if fresh || was.Tooltip != it.Tooltip {
		mi.SetTooltip(it.Tooltip)
	}
	if fresh || was.Disabled != it.Disabled {
		if it.Disabled {
			mi.Disable()
		} else {
			mi.Enable()
		}
	}
	if fresh || was.Check != it.Check {
		if it.Check == Checked {
			mi.Check()
		} else if it.Check == Unchecked && mi.Checked() {
			mi.Uncheck()
		}
	}
	if fresh || was.Hidden != it.Hidden {
		if it.Hidden {
			mi.Hide()
		} else {
			mi.Show()
		}
	}
}

// listen turns clicks on the item with id into its current intent, until the item is
// removed (its channel closes).
func (v *systrayView) listen(id string, clicks <-chan struct{}) {
	for range clicks {
		v.mu.Lock()
		n := v.byID[id]
		var act Intent
		if n != nil && !n.item.Disabled && !n.item.Hidden {
			act = n.item.Action
		}
		click := v.click
		v.mu.Unlock()
		if act != nil && click != nil {
			click(act)
		}
	}
}
