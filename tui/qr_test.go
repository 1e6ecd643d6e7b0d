package tui

import (
	"image"
	"image/color"
	"slices"
	"testing"

	"github.com/makiuchi-d/gozxing"
	gzqr "github.com/makiuchi-d/gozxing/qrcode"
)

// TestQRReadsBack draws a QR code in half blocks, reads the characters
// back into modules, checks them against the encoder's bitmap, and decodes
// the modules, drawn as an image, back to the URL.
func TestQRReadsBack(t *testing.T) {
	for _, url := range []string{"http://192.168.1.20:8080/", "https://fibercut.example/join?lab=stage-2026"} {
		q, err := NewQR(url)
		if err != nil {
			t.Fatal(err)
		}
		bits, err := readHalfBlocks(q.Lines, len(q.Bits))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(bits, q.Bits, slices.Equal[[]bool]) {
			t.Fatalf("%s: the half blocks read back differ from the encoder's bitmap", url)
		}
		if q.Height() != (len(q.Bits)+1)/2 || q.Width() != len(q.Bits) {
			t.Errorf("%s: %d×%d characters for %d modules", url, q.Width(), q.Height(), len(q.Bits))
		}
		for _, row := range []int{0, 1, 2, 3} {
			if slices.Contains(bits[row], true) {
				t.Fatalf("%s: row %d of the quiet zone has a dark module", url, row)
			}
		}
		if got := decode(t, bits); got != url {
			t.Errorf("decoded %q, want %q", got, url)
		}
	}
}

// decode reads modules as a QR code, 4 pixels a module, dark on light.
func decode(t *testing.T, bits [][]bool) string {
	t.Helper()
	const px = 4
	img := image.NewGray(image.Rect(0, 0, len(bits)*px, len(bits)*px))
	for y, row := range bits {
		for x, dark := range row {
			c := color.Gray{Y: 255}
			if dark {
				c = color.Gray{Y: 0}
			}
			for dy := range px {
				for dx := range px {
					img.SetGray(x*px+dx, y*px+dy, c)
				}
			}
		}
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := gzqr.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return res.GetText()
}
