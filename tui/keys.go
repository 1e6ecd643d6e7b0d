package tui

import (
	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
)

// keyMap is the stage's keys, with their help in the screen's language
// (bubbles' key bindings; the footer is bubbles' help). live: a controller
// acts on a lab; otherwise (a replay, a scheduled drill) only the keys
// that change the screen are offered.
type keyMap struct {
	Join, Cut, Cancel, Heal, Isolate, Leader, QR, Presenter, Lang, Finish, Quit, Help key.Binding
	live                                                                              bool
}

func newKeyMap(l Lang, live bool) keyMap {
	b := func(help string, keys ...string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(keyName(keys), l.t("key."+help)))
	}
	k := keyMap{
		Join: b("join", "space"), Cut: b("cut", "c"), Cancel: b("cancel", "esc"), Heal: b("heal", "h"),
		Isolate: b("isolate", "1", "2", "3", "4", "5", "6", "7", "8", "9"), Leader: b("leader", "l"),
		QR: b("qr", "f"), Presenter: b("presenter", "z"), Lang: b("lang", "L"), Finish: b("finish", "enter"),
		Quit: b("quit", "q", "ctrl+c"), Help: b("help", "?"), live: live,
	}
	k.Isolate.SetHelp("1-9", l.t("key.isolate"))
	if !live {
		k.Quit.SetHelp("q", l.t("key.quit.view")) // nothing to heal
	}
	return k
}

// keyName is how the help names a binding's keys: its first.
func keyName(keys []string) string { return keys[0] }

// ShortHelp is the footer's line.
func (k keyMap) ShortHelp() []key.Binding {
	if !k.live {
		return []key.Binding{k.Presenter, k.Lang, k.Quit, k.Help}
	}
	return []key.Binding{k.Cut, k.Heal, k.Isolate, k.Leader, k.QR, k.Presenter, k.Lang, k.Finish, k.Quit, k.Help}
}

// FullHelp is what ? shows: every key, in columns.
func (k keyMap) FullHelp() [][]key.Binding {
	view := []key.Binding{k.QR, k.Presenter, k.Lang, k.Help}
	if !k.live {
		return [][]key.Binding{view, {k.Quit}}
	}
	return [][]key.Binding{{k.Join, k.Cut, k.Cancel, k.Heal}, {k.Isolate, k.Leader, k.Finish, k.Quit}, view}
}

var _ help.KeyMap = keyMap{}
