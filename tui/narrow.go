package tui

import (
	"os"
	"strings"

	"github.com/mattn/go-runewidth"
)

// Terminals set to East Asian ambiguous-wide (common with CJK fonts and
// locales) draw box drawing, blocks and many symbols two columns wide,
// while the layout counts them as one: every line would overflow and wrap.
// With Options.AmbiguousWide the screens keep their layout and trade those
// characters for ASCII of the same width, and the QR code is drawn with
// coloured spaces instead of half blocks.

// ambiguous measures as such a terminal does.
var ambiguous = func() *runewidth.Condition {
	c := runewidth.NewCondition()
	c.EastAsianWidth = true
	return c
}()

// narrowRunes replaces the ambiguous characters the screens use.
var narrowRunes = map[rune]rune{
	'─': '-', '━': '=', '┄': '-', '┅': '~', '┈': '-', '┉': '-', '╌': '-', '╍': '-',
	'│': '|', '┃': '|', '╳': 'x',
	'●': '#', '○': 'o', '◌': ':', '★': '*', '•': '.', '·': '.', '…': '.', '×': 'x', '⇄': '-',
	'→': '>', '←': '<', '≤': '<', '≥': '>', '✓': 'v', '✗': 'x',
	'▁': '.', '▂': '.', '▃': '.', '▄': ':', '▅': ':', '▆': ':', '▇': ':', '█': '#', '▀': '"',
}

// narrowGlyphs replaces every character that an ambiguous-wide terminal
// draws two columns wide, but the layout counted as one, by one ASCII
// character; escape sequences are ASCII and pass unchanged.
func narrowGlyphs(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x80 {
			return r
		}
		if n, ok := narrowRunes[r]; ok {
			return n
		}
		if r >= 0x2500 && r <= 0x257f { // box drawing: corners, tees, crosses
			return '+'
		}
		if ambiguous.RuneWidth(r) == 2 && runewidth.RuneWidth(r) == 1 {
			return '?'
		}
		return r
	}, s)
}

// asciiDigits are the stopwatch's three-row font in ASCII.
var asciiDigits = map[rune][3]string{
	'0': {" _ ", "| |", "|_|"}, '1': {"   ", "  |", "  |"}, '2': {" _ ", " _|", "|_ "},
	'3': {" _ ", " _|", " _|"}, '4': {"   ", "|_|", "  |"}, '5': {" _ ", "|_ ", " _|"},
	'6': {" _ ", "|_ ", "|_|"}, '7': {" _ ", "  |", "  |"}, '8': {" _ ", "|_|", "|_|"},
	'9': {" _ ", "|_|", " _|"}, '.': {" ", " ", "."}, 's': {" ", " ", "s"}, ' ': {" ", " ", " "},
}

// AmbiguousWideFromEnv reports whether the environment says the terminal
// draws ambiguous-width characters two columns wide: RUNEWIDTH_EASTASIAN=1,
// the convention of go-runewidth (terminals cannot be asked).
func AmbiguousWideFromEnv() bool { return os.Getenv("RUNEWIDTH_EASTASIAN") == "1" }
